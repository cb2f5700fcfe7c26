"""``load_run``: a trained run (network, denoiser, process, prior) from a checkpoint, ready to sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..corrupt import CorruptionProcess
from ..models import NETWORKS
from ..samplers.class_prior import ClassPrior
from ..samplers.prior import Prior, prior_from_state_dict
from ..score import DataStatistics, Denoiser, needs_statistics
from .checkpoint import read_checkpoint
from .config import RunConfig
from .consistency import check_weights
from .corruption import Corruption, rebuild_process

__all__ = ["TrainedRun", "load_run", "build_net"]


@dataclass
class TrainedRun:
    """What a sampler or an evaluation needs from a trained run."""

    config: RunConfig
    process: CorruptionProcess
    net: nn.Module
    denoiser: Denoiser
    prior: Prior | ClassPrior
    step: int
    image_shape: tuple[int, int, int]
    path: Path

    @property
    def classes(self) -> list[str] | None:
        """The class names of a class-conditional run, in label order (None: unconditional)."""
        return self.config.classes


def build_net(config: RunConfig) -> nn.Module:
    """The network a config describes: its ``network`` entry built from the ``model`` settings."""
    return NETWORKS[config.network].build(NETWORKS.params(config.network, config.model))


def load_run(
    path: str | Path,
    device: str | torch.device = "cpu",
    ema: bool = True,
    net: nn.Module | None = None,
    corruption: Corruption | None = None,
) -> TrainedRun:
    """Load the latest checkpoint of a run folder, or one checkpoint folder.

    ``ema=True`` loads the EMA weights (what to sample with), else the raw ones. ``net``
    replaces the U-Net by your own module of the same architecture as the trained one.
    A bad path or a truncated/tampered checkpoint raises a one-line ``ValueError``.

    The operator is rebuilt from ``config.json`` (importing the plugin module it names, if
    any), or is ``corruption`` when given (needed for a run trained with an operator object
    that could not be recorded). Either way it must be the operator the run trained with.
    """
    ckpt = read_checkpoint(path)
    config = ckpt.config.load_plugins()  # the modules the run names register its components
    shape = config.image_shape
    process = rebuild_process(config, shape[1:], corruption)  # a plugin that cannot be imported fails first
    net = net if net is not None else build_net(config)
    weights = ckpt.ema if ema else ckpt.net
    check_weights(weights, net, f"checkpoint {ckpt.path} ({'EMA' if ema else 'raw'} weights)")
    net.load_state_dict(weights)
    net = net.to(device).eval().requires_grad_(False)
    stats = None
    if needs_statistics(config.objective.parameterisation):
        if ckpt.precond is None:
            raise ValueError(
                f"checkpoint {ckpt.path} uses parameterisation {config.objective.parameterisation!r} "
                "but holds no precond.safetensors (its data statistics)"
            )
        stats = DataStatistics.from_state_dict(ckpt.precond)
    denoiser = Denoiser(net, process, config.objective.parameterisation, stats=stats).eval()
    prior: Prior | ClassPrior = prior_from_state_dict(ckpt.prior)
    if ckpt.class_prior is not None:  # draws with labels come from their class's prior, the rest from the shared
        prior = ClassPrior.from_state_dict(ckpt.class_prior, prior)
    return TrainedRun(config, process, net, denoiser, prior, ckpt.step, shape, ckpt.path)
