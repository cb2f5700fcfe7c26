"""The defaults of level selection, in one home: ``softdiff schedule`` and training start use them.

A fresh run whose operator is a blur-like operator diagonal in the DCT basis (the heat
blur, alone or composed with other DCT-diagonal operators; not the identity) and that was
given no levels selects them itself, with these defaults, before its first step: the
paper's principled schedule by default (Daras et al. §3.3). That is the main job's
recipe: on Fashion-MNIST it gives exactly ``docs/levels-blur-fashion-mnist.json``, and
FID 38.0 against 71.4 on the blur's own log-linear schedule (docs/benchmarks.md). For
those operators the selection works in the operator's basis (``LevelFitter``), tens of
seconds on 2 cores. Other operators keep their own schedule unless given ``--levels``:
their selection is slower and its effect on training was not measured.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ..corrupt import CorruptionConfig, CorruptionProcess
from .levelfile import LevelSelection
from .moments import DataMoments
from .select import select_levels

if TYPE_CHECKING:  # the data package is not a dependency of level selection, only of this helper's callers
    from ..data import ImageData

__all__ = [
    "DEFAULT_LEVELS",
    "DEFAULT_CANDIDATES",
    "DEFAULT_SAMPLES",
    "AUTO_PROJECTION_ABOVE",
    "default_projection",
    "selects_levels_by_default",
    "training_levels",
]

DEFAULT_LEVELS = 32  # K, the paper's order of magnitude for CelebA-64 and what the main job uses
DEFAULT_CANDIDATES = 256
DEFAULT_SAMPLES = 2000  # training images fitted; the selection's cost grows with d^2, not with N
AUTO_PROJECTION_ABOVE = 1024  # pixels x channels; beyond this the default is a 16x16 DCT projection


def default_projection(value: int | None, shape: tuple[int, int, int]) -> int | None:
    """``None``: auto (full resolution up to 32x32 grey, else 16 DCT frequencies per axis); ``0``: full."""
    if value is None:
        return None if math.prod(shape) <= AUTO_PROJECTION_ABOVE else min(16, *shape[1:])
    if value < 0:
        raise ValueError(f"--projection must be >= 0 (0 = full resolution), got {value}")
    return value or None


def selects_levels_by_default(process: CorruptionProcess, shape: tuple[int, int, int]) -> bool:
    """Whether a fresh run of ``process`` (no levels given) selects its levels before training."""
    if process.warp is not None or process.operator.is_identity:
        return False
    return process.dct_gains(torch.zeros(1), torch.zeros(1, *shape)) is not None


def training_levels(config: CorruptionConfig, data: ImageData, seed: int = 0) -> LevelSelection:
    """``DEFAULT_LEVELS`` levels for ``config`` on ``DEFAULT_SAMPLES`` images of ``data`` (as ``softdiff schedule``)."""
    picked = data.subset(DEFAULT_SAMPLES, seed)
    moments = DataMoments.from_images(picked.batch(slice(None)))
    return select_levels(
        config.model_copy(update={"levels": None}),
        moments,
        candidates=DEFAULT_CANDIDATES,
        k=DEFAULT_LEVELS,
        projection=default_projection(None, picked.shape),
    )
