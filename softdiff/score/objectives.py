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

Weightings: ``"uniform"`` (``w = 1``), ``"inverse_noise"`` (``w = 1 / s_t^2``), a
:class:`LossScale` (``w = 1 / L_0(t)``, EDM's ``lambda(sigma)`` for any process and objective)
or any callable ``w(t, s_t) -> (B,)``.

Time samplers: ``uniform_t``, :class:`LevelTimes` (the K selected levels), :class:`LogNormalNoise`
(EDM's ``ln s ~ N(P_mean, P_std^2)`` through the process's ``s_t``) and :class:`LogitNormalTimes`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess, LevelTable
from ..registry import Registry
from .parameterisation import DenoiserFn

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
    "uniform_t",
    "LevelTimes",
    "build_objective",
    "DEFAULT_ANCHOR",
]

WeightFn = Callable[[Tensor, Tensor], Tensor]
Weighting = Literal["uniform", "inverse_noise"] | WeightFn
TSampler = Callable[[int, "torch.Generator | None", torch.device], Tensor]
AnchorAt = Literal["zero", "below"]
ANCHOR_LEVELS: tuple[AnchorAt, ...] = ("zero", "below")
# The default anchor weight of the soft loss: |C_t r|^2 + 4 |r|^2 (docs/benchmarks.md#the-default-objective).
DEFAULT_ANCHOR = 4.0

WEIGHTINGS: dict[str, WeightFn] = {
    "uniform": lambda t, s: torch.ones_like(t),
    "inverse_noise": lambda t, s: s.pow(-2),
}


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


class LogitNormalTimes:
    """``t = sigmoid(mean + std * z)``: more training where ``t`` is mid-way (a logit-normal law)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"a logit-normal t-sampler needs a finite mean and std > 0, got {mean}, {std}")
        self.mean, self.std = float(mean), float(std)

    def __call__(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        where = generator.device if generator is not None else device
        z = torch.randn(n, generator=generator, device=where)
        return torch.sigmoid(self.mean + self.std * z).to(device)

    def __repr__(self) -> str:
        return f"LogitNormalTimes({self.mean}, {self.std})"


class LogNormalNoise:
    """EDM's training noise law ``ln s ~ N(p_mean, p_std^2)``, mapped to ``t`` through ``s_t``.

    ``s_t`` must grow strictly with ``t`` (as vanilla diffusion's does); draws outside
    ``[s_0, s_1]`` land on the nearest end. For processes whose noise barely changes
    (blur with ``s`` from 0.01 to 0.1) this law says little: use ``LogitNormalTimes``.
    """

    def __init__(self, process: CorruptionProcess, p_mean: float = -1.2, p_std: float = 1.2, grid: int = 4097) -> None:
        if not (math.isfinite(p_mean) and math.isfinite(p_std) and p_std > 0):
            raise ValueError(f"a log-normal noise sampler needs a finite p_mean and p_std > 0, got {p_mean}, {p_std}")
        ts = torch.linspace(0, 1, grid, dtype=torch.float64)
        log_s = torch.as_tensor(process.s(ts), dtype=torch.float64).log()
        if not bool(torch.isfinite(log_s).all()) or bool((log_s.diff() <= 0).any()):
            raise ValueError("t_sampler 'lognormal' needs a noise schedule s_t > 0 that grows strictly with t")
        self.p_mean, self.p_std = float(p_mean), float(p_std)
        self._ts, self._log_s = ts, log_s

    def __call__(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        where = generator.device if generator is not None else device
        log_s = (self.p_mean + self.p_std * torch.randn(n, generator=generator, device=where)).cpu().double()
        log_s = log_s.clamp(float(self._log_s[0]), float(self._log_s[-1]))
        hi = torch.searchsorted(self._log_s, log_s).clamp(1, len(self._ts) - 1)
        lo = hi - 1
        frac = (log_s - self._log_s[lo]) / (self._log_s[hi] - self._log_s[lo])
        t = self._ts[lo] + frac * (self._ts[hi] - self._ts[lo])
        return t.clamp(0, 1).to(device=device, dtype=torch.get_default_dtype())

    def __repr__(self) -> str:
        return f"LogNormalNoise({self.p_mean}, {self.p_std})"


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
        return self.weight(t, s) * self.term(h, x0, x_t, t, s, generator)

    def term(
        self, h: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, s: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """The unweighted per-example loss; ``generator`` feeds any draw of its own (None: torch's global RNG)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        weighting = self.weighting if isinstance(self.weighting, str) else getattr(self.weighting, "__name__", "custom")
        return f"{type(self).__name__}(weighting={weighting!r}, t_sampler={self.t_sampler!r})"


class SoftScoreMatching(Objective):
    """``w(t) * [mean(|C_t (h - x_0)|^2) + anchor * mean(|h - x_0|^2)]``: the corrupted prediction is supervised.

    ``anchor = 0`` is the paper's loss; ``anchor > 0`` also fixes what ``C_t`` cannot see
    without moving the minimiser (see the module docstring).
    """

    name = "soft"

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

    def term(
        self, h: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, s: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        return _pixel_mean((h - x0).square())


OBJECTIVES: Registry[type[Objective]] = Registry("objective")
for _cls in (SoftScoreMatching, DenoisingScoreMatching, X0Regression):
    OBJECTIVES.register(_cls.name, _cls)


def build_objective(
    name: str,
    process: CorruptionProcess,
    weighting: Weighting = "uniform",
    t_sampler: TSampler | None = None,
    anchor: float | None = None,
    anchor_at: AnchorAt = "zero",
) -> Objective:
    """An objective by its short name (``soft``, ``dsm``, ``x0``); ``anchor`` (default 4) applies to ``soft`` only."""
    cls = OBJECTIVES.get(name)  # an unknown name fails here, listing the known ones
    if name == "soft":
        return SoftScoreMatching(process, weighting, t_sampler, DEFAULT_ANCHOR if anchor is None else anchor, anchor_at)
    if anchor:
        raise ValueError(f"the anchor weight applies to the soft objective only, not {name!r}")
    return cls(process, weighting, t_sampler)


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
