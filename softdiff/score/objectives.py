"""Training objectives: small callables ``loss(denoiser, x0, generator=None) -> (B,)``.

Each samples its own time ``t`` (uniform on [0, 1] unless given a ``t_sampler``) and noise
``eta``, forms ``x_t = C_t x_0 + s_t eta`` and returns one loss per example.

**Normalisation** (the same for all three): the squared norm is the *mean over the
``D = C*H*W`` pixels* of one example, so a loss is O(1) whatever the image size.

With ``r = C_t (h(x_t, t) - x_0)`` and ``w(t)`` the selected weighting:

* ``SoftScoreMatching``:      ``w(t) * mean(r^2)``
* ``DenoisingScoreMatching``: ``w(t) * s_t^2 * mean((s_theta - target)^2)`` with
  ``s_theta = (C_t h - x_t) / s_t^2`` and ``target = (C_t x_0 - x_t) / s_t^2``
  (the usual ``s_t^2`` rescaling of DSM). Since ``s_theta - target = r / s_t^2`` this is
  ``w(t) * mean(r^2) / s_t^2``: **DSM with weighting w equals soft score matching with
  weighting w / s_t^2** (same minimiser, and at every ``t`` the same gradient direction,
  scaled by ``1 / s_t^2``). DSM with ``"uniform"`` is soft with ``"inverse_noise"``.
* ``X0Regression``:           ``w(t) * mean((h - x_0)^2)`` (no operator: the ablation).

**The anchor (on by default).** Soft score matching determines only ``C_t h``: every ``h``
with the same ``C_t h`` has the same loss and the same score, so what ``h`` holds where
``C_t`` is (nearly) blind is never trained. The samplers need exactly that part, since they
apply ``C_t'`` with ``t' < t`` (less blur, fewer hidden pixels) to ``h``, and the paper's loss
alone samples speckle. ``SoftScoreMatching(anchor=beta)`` adds ``beta * mean(|C_u (h - x_0)|^2)``
with ``u = 0`` (``C_0 = I``: ``|h - x_0|^2``; ``anchor_at="zero"``, the default) or ``u`` drawn
uniformly below ``t`` (``anchor_at="below"``: through the levels a sampler moves to). As
``E[x_0 | x_t]`` minimises both terms, the minimiser (and so the score) is the paper's, but
``h`` is now determined everywhere. Per DCT frequency (or pixel, for a mask) the loss weighs
the error by ``g^2 + beta``: from the paper's ``g^2`` (``beta = 0``) towards x0 regression
(``beta -> inf``). The default ``beta = 4`` was measured, with the alternatives, in
docs/benchmarks.md; ``anchor=0`` is the paper's loss.

Weightings are the names of :data:`~softdiff.score.weightings.WEIGHTINGS`, a
:class:`LossScale` (``w = 1 / L_0(t)``) or any callable ``w(t, s_t) -> (B,)``; time samplers
live in :mod:`softdiff.score.times`. Objectives are entries of :data:`OBJECTIVES`; an
objective's settings are its ``Params`` (the soft loss's anchor), so a plugin's objective
(:func:`register_objective`) is configured like a built-in.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from ..conditioning import Cond, DenoiserFn, call_denoiser
from ..corrupt import CorruptionProcess
from ..registry import NoParams, Registry
from .times import LevelTimes, LogitNormalTimes, LogNormalNoise, TSampler, uniform_t
from .weightings import WEIGHTINGS, LossScale, WeightFn, weight_fn

__all__ = [
    "LossScale",
    "LogNormalNoise",
    "LogitNormalTimes",
    "loss_scale",
    "SoftScoreMatching",
    "DenoisingScoreMatching",
    "X0Regression",
    "Objective",
    "OBJECTIVES",
    "WEIGHTINGS",
    "register_objective",
    "uniform_t",
    "LevelTimes",
    "build_objective",
    "DEFAULT_ANCHOR",
]

Weighting = str | WeightFn
AnchorAt = Literal["zero", "below"]
ANCHOR_LEVELS: tuple[AnchorAt, ...] = ("zero", "below")
# The default anchor weight of the soft loss: |C_t r|^2 + 4 |r|^2 (docs/benchmarks.md#the-default-objective).
DEFAULT_ANCHOR = 4.0


def _pixel_mean(x: Tensor) -> Tensor:
    return x.flatten(1).mean(1)


class Objective:
    """Shared machinery: sample ``t`` and noise, corrupt, denoise, then a per-example term."""

    name = "objective"
    description: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams  # the settings a config gives the constructor (as keywords)

    def __init__(
        self, process: CorruptionProcess, weighting: Weighting = "uniform", t_sampler: TSampler | None = None
    ) -> None:
        self.process = process
        self.weighting = weighting
        self.weight = weight_fn(weighting)
        self.t_sampler: TSampler = t_sampler or uniform_t

    def __call__(
        self,
        denoiser: DenoiserFn,
        x0: Tensor,
        generator: torch.Generator | None = None,
        *,
        t: Tensor | None = None,
        noise: Tensor | None = None,
        cond: Cond = None,
    ) -> Tensor:
        """Per-example loss ``(B,)``; ``t`` and ``noise`` are drawn from ``generator`` unless given.

        ``cond`` (labels of ``x0``'s rows, :mod:`softdiff.conditioning`) goes untouched to the denoiser.
        """
        batch = x0.shape[0]
        if t is None:
            t = self.t_sampler(batch, generator, x0.device)
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device).expand(batch)
        if noise is None:
            where = generator.device if generator is not None else x0.device
            noise = torch.randn(x0.shape, generator=generator, device=where, dtype=x0.dtype).to(x0.device)
        s = self.process.s(t).to(x0.dtype)
        x_t = self.process.C(x0, t) + s[:, None, None, None] * noise
        h = call_denoiser(denoiser, x_t, t, cond)
        return self.weight(t, s) * self.term(h, x0, x_t, t, s, generator)

    def term(
        self, h: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, s: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """The unweighted per-example loss; ``generator`` feeds any draw of its own (None: torch's global RNG)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        weighting = self.weighting if isinstance(self.weighting, str) else getattr(self.weighting, "__name__", "custom")
        return f"{type(self).__name__}(weighting={weighting!r}, t_sampler={self.t_sampler!r})"


class SoftParams(BaseModel):
    """The soft loss's settings: the anchor term's weight and operator."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    anchor: float = Field(
        DEFAULT_ANCHOR,
        ge=0,
        description="+ anchor * |C_u (h - x0)|^2 fixes what C_t cannot see; 0 is the paper's loss, which samples "
        "speckle",
    )
    anchor_at: AnchorAt = Field(
        "zero",
        description="the anchor's operator C_u: u = 0 (|h - x0|^2) or u ~ U[0, t] (a level the sampler moves to)",
    )


class SoftScoreMatching(Objective):
    """``w(t) * [mean(|C_t (h - x_0)|^2) + anchor * mean(|h - x_0|^2)]``: the corrupted prediction is supervised.

    ``anchor = 0`` is the paper's loss; ``anchor > 0`` also fixes what ``C_t`` cannot see
    without moving the minimiser (see the module docstring).
    """

    name = "soft"
    description = "soft score matching (+ anchor)"
    Params = SoftParams

    def __init__(
        self,
        process: CorruptionProcess,
        weighting: Weighting = "uniform",
        t_sampler: TSampler | None = None,
        anchor: float = DEFAULT_ANCHOR,
        anchor_at: AnchorAt = "zero",
    ) -> None:
        if not (math.isfinite(anchor) and anchor >= 0):
            raise ValueError(f"the anchor weight must be a finite number >= 0, got {anchor}")
        if anchor_at not in ANCHOR_LEVELS:
            raise ValueError(f"anchor_at must be one of {', '.join(ANCHOR_LEVELS)}, got {anchor_at!r}")
        super().__init__(process, weighting, t_sampler)
        self.anchor, self.anchor_at = float(anchor), anchor_at

    def term(
        self, h: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, s: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        r = h - x0
        soft = _pixel_mean(self.process.C(r, t).square())
        if not self.anchor:
            return soft
        if self.anchor_at == "zero":
            return soft + self.anchor * _pixel_mean(r.square())
        where = generator.device if generator is not None else t.device
        u = t * torch.rand(t.shape, generator=generator, device=where, dtype=t.dtype).to(t.device)
        return soft + self.anchor * _pixel_mean(self.process.C(r, u).square())

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", anchor={self.anchor}, anchor_at={self.anchor_at!r})"


class DenoisingScoreMatching(Objective):
    """``w(t) * s_t^2 * mean(|s_theta - grad log q(x_t | x_0)|^2)`` with ``s_theta = (C_t h - x_t) / s_t^2``."""

    name = "dsm"
    description = "DSM on the score"

    def term(
        self, h: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, s: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        s2 = s.square()[:, None, None, None]
        score = (self.process.C(h, t) - x_t) / s2
        target = (self.process.C(x0, t) - x_t) / s2
        return s.square() * _pixel_mean((score - target).square())


class X0Regression(Objective):
    """``w(t) * mean(|h(x_t, t) - x_0|^2)``: regression on the clean image, no operator in the loss."""

    name = "x0"
    description = "x0 regression (no operator)"

    def term(
        self, h: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, s: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        return _pixel_mean((h - x0).square())


OBJECTIVES: Registry[type[Objective]] = Registry("objective")


def register_objective(name: str, cls: type[Objective], *, replace: bool = False) -> None:
    """Register an :class:`Objective` subclass; its ``Params`` (optional) are its constructor's extra keywords."""
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ValueError(f"objective {name!r} must be an Objective subclass, got {cls!r}")
    OBJECTIVES.register(name, cls, replace=replace)


for _cls in (SoftScoreMatching, DenoisingScoreMatching, X0Regression):
    register_objective(_cls.name, _cls)


def build_objective(
    name: str,
    process: CorruptionProcess,
    weighting: Weighting = "uniform",
    t_sampler: TSampler | None = None,
    **params: Any,
) -> Objective:
    """An objective by its registered name; ``params`` are checked against its ``Params`` (soft: ``anchor``, ...)."""
    cls = OBJECTIVES.get(name)  # an unknown name fails here, listing the known ones
    settings = OBJECTIVES.params(name, params)
    return cls(process, weighting, t_sampler, **settings.model_dump())


@torch.no_grad()
def loss_scale(
    objective: Objective,
    denoiser: DenoiserFn,
    images: Tensor,
    grid: int = 65,
    generator: torch.Generator | None = None,
    relative_to: Objective | None = None,
) -> LossScale:
    """Estimate ``L_0(t)``, the unweighted loss of ``denoiser`` (the network-free one), at ``grid`` even times.

    With ``relative_to``, the ratio of the two objectives' ``L_0`` on the same draws: weighting by
    it gives ``objective`` the per-time scale of the other (``"balanced"``: that of ``x0``).
    Monte Carlo over ``images`` (all of them at every time, fresh noise from ``generator``);
    the estimate's relative error is about ``sqrt(2 / len(images))`` per time.
    """
    values = torch.empty(grid, dtype=torch.float64)
    for i, t in enumerate(torch.linspace(0, 1, grid, dtype=torch.float64).tolist()):
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
        s = objective.process.s(torch.full((images.shape[0],), t, dtype=images.dtype))
        x_t = objective.process.C(images, t) + s[:, None, None, None] * noise
        h = denoiser(x_t, torch.full((images.shape[0],), t, dtype=images.dtype))
        tt = torch.full_like(s, t)
        values[i] = objective.term(h, images, x_t, tt, s, generator).double().mean()
        if relative_to is not None:
            values[i] /= relative_to.term(h, images, x_t, tt, s).double().mean().clamp_min(1e-30)
    return LossScale(values)
