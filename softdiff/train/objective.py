"""The training objective a run config describes: loss, weighting, time sampler and their data.

Kept apart from the loop because two of its parts are estimated from data once per run and
then stored with the checkpoints: the preconditioning statistics (:class:`DataStatistics`)
and, for ``weighting = "normalised"``, the loss scale ``L_0(t)``. A resumed run reads both
back instead of re-estimating them, so it continues the exact same computation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess
from ..score import (
    T_SAMPLERS,
    WEIGHTINGS,
    DataStatistics,
    Denoiser,
    LossScale,
    Objective,
    TimeContext,
    build_objective,
    loss_scale,
    needs_statistics,
)
from ..score.times import TSampler
from .config import ObjectiveConfig, RunConfig

__all__ = ["t_sampler_for", "objective_for", "statistics_for", "precond_state", "LOSS_SCALE_KEY"]

LOSS_SCALE_KEY = "loss_scale"
_SCALE_IMAGES = 1024  # images per time in the Monte Carlo estimate of L_0(t): ~4% relative error


def t_sampler_for(config: RunConfig, process: CorruptionProcess) -> TSampler | None:
    """The configured time sampler, built by its registry entry from its settings."""
    oc = config.objective
    levels = config.corruption.levels
    context = TimeContext(process, len(levels) if levels is not None else None)
    return T_SAMPLERS[oc.t_sampler].build(T_SAMPLERS.params(oc.t_sampler, oc.t_sampler_params), context)


def statistics_for(
    config: RunConfig, process: CorruptionProcess, images: Tensor, stored: dict[str, Tensor] | None
) -> DataStatistics | None:
    """The preconditioning statistics: from the checkpoint when resuming, else estimated from ``images``."""
    if not needs_statistics(config.objective.parameterisation):
        return None
    if stored is not None:
        return DataStatistics.from_state_dict(stored)
    return DataStatistics.estimate(process, images)


def objective_for(
    oc: ObjectiveConfig,
    process: CorruptionProcess,
    t_sampler: TSampler | None,
    denoiser: Denoiser,
    images: Tensor,
    seed: int,
    stored: dict[str, Tensor] | None,
) -> tuple[Objective, LossScale | None]:
    """The objective, with its loss scale (stored, or estimated on ``images`` with the network-free denoiser)."""
    rule = WEIGHTINGS[oc.weighting]
    if not rule.estimated:
        return build_objective(oc.name, process, oc.weighting, t_sampler, **oc.params), None
    if stored is not None and LOSS_SCALE_KEY in stored:
        scale = LossScale(stored[LOSS_SCALE_KEY])
    else:
        unweighted = build_objective(oc.name, process, "uniform", t_sampler, **oc.params)
        reference = build_objective(rule.reference, process) if rule.reference is not None else None
        generator = torch.Generator().manual_seed(seed)
        scale = loss_scale(
            unweighted, denoiser.linear, images[:_SCALE_IMAGES], generator=generator, relative_to=reference
        )
    return build_objective(oc.name, process, scale, t_sampler, **oc.params), scale


def precond_state(stats: DataStatistics | None, scale: LossScale | None) -> dict[str, Tensor] | None:
    """What a checkpoint stores in ``precond.safetensors`` (None when the run needs neither)."""
    state: dict[str, Tensor] = {}
    if stats is not None:
        state.update(stats.state_dict())
    if scale is not None:
        state[LOSS_SCALE_KEY] = scale.values
    return state or None
