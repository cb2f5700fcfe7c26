"""Named strengths of a process at given times (blur sigma, mask fraction, noise s), for reports.

Each operator reports its own through ``strength(t)`` and ``strength_name``: there is no
dispatch on operator types here, so a user's operator shows up as soon as it has one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..corrupt import Compose, CorruptionProcess, LinearCorruption

__all__ = ["level_strengths"]


def _leaves(op: LinearCorruption) -> list[LinearCorruption]:
    if isinstance(op, Compose):
        return _leaves(op.inner) + _leaves(op.outer)  # application order
    return [op]


def level_strengths(process: CorruptionProcess, times: Tensor | list[float]) -> dict[str, list[float]]:
    """Named strengths of the un-warped process at source times: blur sigma, mask fraction, noise s.

    Every operator of the chain with a ``strength(t)`` method contributes one, named by its
    ``strength_name`` (default: its class name in lower case); repeated names get ``_2``, ...
    """
    u = torch.as_tensor(times, dtype=torch.float64)
    out: dict[str, list[float]] = {}

    def put(name: str, values: Tensor) -> None:
        key, i = name, 2
        while key in out:
            key, i = f"{name}_{i}", i + 1
        out[key] = [float(v) for v in values]

    for leaf in _leaves(process.operator):
        if callable(getattr(leaf, "strength", None)):
            put(getattr(leaf, "strength_name", None) or type(leaf).__name__.lower(), leaf.strength(u))
    put("noise_s", process.noise(u))
    return out
