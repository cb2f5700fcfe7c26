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

Weightings: ``"uniform"`` (``w = 1``), ``"inverse_noise"`` (``w = 1 / s_t^2``) or any
callable ``w(t, s_t) -> (B,)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess
from .parameterisation import DenoiserFn

__all__ = [
    "SoftScoreMatching",
    "DenoisingScoreMatching",
    "X0Regression",
    "Objective",
    "OBJECTIVES",
    "WEIGHTINGS",
    "uniform_t",
    "LevelTimes",
    "build_objective",
]

WeightFn = Callable[[Tensor, Tensor], Tensor]
Weighting = Literal["uniform", "inverse_noise"] | WeightFn
TSampler = Callable[[int, "torch.Generator | None", torch.device], Tensor]

WEIGHTINGS: dict[str, WeightFn] = {
    "uniform": lambda t, s: torch.ones_like(t),
    "inverse_noise": lambda t, s: s.pow(-2),
}


def uniform_t(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``t ~ U[0, 1]``, ``n`` of them."""
    where = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=where).to(device)


class LevelTimes:
    """``t`` uniform over the ``K`` levels ``k / (K - 1)`` of a level table (matched to a schedule)."""

    def __init__(self, levels: int) -> None:
        if levels < 2:
            raise ValueError(f"a level t-sampler needs at least 2 levels, got {levels}")
        self.levels = int(levels)

    def __call__(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        where = generator.device if generator is not None else device
        k = torch.randint(self.levels, (n,), generator=generator, device=where)
        return (k.float() / (self.levels - 1)).to(device)

    def __repr__(self) -> str:
        return f"LevelTimes({self.levels})"


def _weight_fn(weighting: Weighting) -> WeightFn:
    if callable(weighting):
        return weighting
    if weighting not in WEIGHTINGS:
        raise ValueError(
            f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)} or pass a callable w(t, s_t)"
        )
    return WEIGHTINGS[weighting]


def _pixel_mean(x: Tensor) -> Tensor:
    return x.flatten(1).mean(1)


class Objective:
    """Shared machinery: sample ``t`` and noise, corrupt, denoise, then a per-example term."""

    name = "objective"

    def __init__(
        self, process: CorruptionProcess, weighting: Weighting = "uniform", t_sampler: TSampler | None = None
    ) -> None:
        self.process = process
        self.weighting = weighting
        self.weight = _weight_fn(weighting)
        self.t_sampler: TSampler = t_sampler or uniform_t

    def __call__(
        self,
        denoiser: DenoiserFn,
        x0: Tensor,
        generator: torch.Generator | None = None,
        *,
        t: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Per-example loss ``(B,)``; ``t`` and ``noise`` are drawn from ``generator`` unless given."""
        batch = x0.shape[0]
        if t is None:
            t = self.t_sampler(batch, generator, x0.device)
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device).expand(batch)
        if noise is None:
            where = generator.device if generator is not None else x0.device
            noise = torch.randn(x0.shape, generator=generator, device=where, dtype=x0.dtype).to(x0.device)
        s = self.process.s(t).to(x0.dtype)
        x_t = self.process.C(x0, t) + s[:, None, None, None] * noise
        h = denoiser(x_t, t)
        return self.weight(t, s) * self.term(h, x0, x_t, t, s)

    def term(self, h: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, s: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        weighting = self.weighting if isinstance(self.weighting, str) else getattr(self.weighting, "__name__", "custom")
        return f"{type(self).__name__}(weighting={weighting!r}, t_sampler={self.t_sampler!r})"


class SoftScoreMatching(Objective):
    """``w(t) * mean(|C_t (h(x_t, t) - x_0)|^2)``: only the corrupted prediction is supervised."""

    name = "soft"

    def term(self, h: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, s: Tensor) -> Tensor:
        return _pixel_mean(self.process.C(h - x0, t).square())


class DenoisingScoreMatching(Objective):
    """``w(t) * s_t^2 * mean(|s_theta - grad log q(x_t | x_0)|^2)`` with ``s_theta = (C_t h - x_t) / s_t^2``."""

    name = "dsm"

    def term(self, h: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, s: Tensor) -> Tensor:
        s2 = s.square()[:, None, None, None]
        score = (self.process.C(h, t) - x_t) / s2
        target = (self.process.C(x0, t) - x_t) / s2
        return s.square() * _pixel_mean((score - target).square())


class X0Regression(Objective):
    """``w(t) * mean(|h(x_t, t) - x_0|^2)``: regression on the clean image, no operator in the loss."""

    name = "x0"

    def term(self, h: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, s: Tensor) -> Tensor:
        return _pixel_mean((h - x0).square())


OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (SoftScoreMatching, DenoisingScoreMatching, X0Regression)
}


def build_objective(
    name: str, process: CorruptionProcess, weighting: Weighting = "uniform", t_sampler: TSampler | None = None
) -> Objective:
    """An objective by its short name (``soft``, ``dsm``, ``x0``)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name](process, weighting, t_sampler)
