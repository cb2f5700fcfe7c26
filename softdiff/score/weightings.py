"""Loss weightings ``w(t, s_t)``: one registry for the fixed ones and those estimated from data.

A fixed weighting is a function of ``(t, s_t)``. An estimated one (``fn=None``) is
``w(t) = 1 / L_0(t)``, the loss of the network-free denoiser at each time (:class:`LossScale`,
EDM's ``lambda(sigma)`` for any process), optionally divided by another objective's
``L_0`` (``reference``): the trainer estimates it once per run and stores it with the
checkpoints. A plugin adds one with :func:`register_weighting`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..corrupt import LevelTable
from ..registry import Registry

__all__ = ["WeightFn", "WeightingRule", "WEIGHTINGS", "register_weighting", "weight_fn", "LossScale"]

WeightFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class WeightingRule:
    """A registered weighting: a fixed ``fn(t, s_t) -> (B,)``, or (``fn=None``) ``1 / L_0(t)`` estimated from data.

    ``reference`` (estimated only) names the objective whose ``L_0`` divides it, so the weighted
    loss takes that objective's per-time scale (``balanced``: that of ``x0``).
    """

    description: str
    fn: WeightFn | None = None
    reference: str | None = None

    @property
    def estimated(self) -> bool:
        return self.fn is None


WEIGHTINGS: Registry[WeightingRule] = Registry("weighting")
WEIGHTINGS.register("uniform", WeightingRule("w = 1", lambda t, s: torch.ones_like(t)))
WEIGHTINGS.register("inverse_noise", WeightingRule("w = 1/s_t^2", lambda t, s: s.pow(-2)))
WEIGHTINGS.register("normalised", WeightingRule("w = 1/L_0(t), EDM's lambda for any process"))
WEIGHTINGS.register("balanced", WeightingRule("the x0 loss's per-t scale", reference="x0"))


def register_weighting(name: str, rule: WeightingRule | WeightFn, *, replace: bool = False) -> None:
    """Register a weighting by name: a :class:`WeightingRule` or a plain ``fn(t, s_t) -> (B,)``."""
    if not isinstance(rule, WeightingRule):
        if not callable(rule):
            raise ValueError(f"a weighting is a WeightingRule or a callable w(t, s_t), got {type(rule).__name__}")
        rule = WeightingRule(getattr(rule, "__doc__", None) or name, rule)
    WEIGHTINGS.register(name, rule, replace=replace)


def weight_fn(weighting: str | WeightFn) -> WeightFn:
    """The function of a fixed weighting's name, or ``weighting`` itself when it is a callable."""
    if callable(weighting):
        return weighting
    rule = WEIGHTINGS.get(weighting)  # an unknown name fails here, listing the known ones
    if rule.fn is None:
        raise ValueError(
            f"weighting {weighting!r} is estimated from data: pass its LossScale (softdiff.score.loss_scale), "
            "as softdiff.train does"
        )
    return rule.fn


class LossScale:
    """``w(t) = 1 / L_0(t)``: each time's loss divided by that of the network-free denoiser.

    ``L_0(t)`` is the expected unweighted loss when the network outputs 0, so that the
    denoiser is only its skip (for ``precond``: the best linear estimate). For ``x0`` with
    ``C = I`` and the scalar preconditioning this is ``c_out(t)^2``, i.e. EDM's
    ``lambda(sigma) = 1 / c_out^2``; it is defined the same way for any operator and
    objective. ``values`` are ``L_0`` on an even grid of times (see :func:`loss_scale`).
    """

    def __init__(self, values: Tensor, floor: float = 1e-12) -> None:
        values = torch.as_tensor(values, dtype=torch.float64)
        if values.ndim != 1 or values.numel() < 2 or not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
            raise ValueError("a loss scale needs >= 2 finite, non-negative values on an even grid of times")
        self.values, self.floor = values, float(floor)
        self._table = LevelTable(values.clamp_min(floor))

    def __call__(self, t: Tensor, s: Tensor) -> Tensor:
        return 1.0 / self._table(t)

    def __repr__(self) -> str:
        lo, hi = self.values.min().item(), self.values.max().item()
        return f"LossScale({self.values.numel()} times, {lo:.3g} .. {hi:.3g})"
