"""``grid = "auto"``: a time grid optimised for one sampler, step count and model (Align Your Steps, generalised).

Sabour et al. (*Align Your Steps*, 2024) choose a sampler's noise levels by minimising its
error on a model of the data. Here the model is the data's Gaussian fit that every run
with a ``precond`` parameterisation already stores (the mean image and the variances of
its DCT coefficients, ``softdiff.score.DataStatistics``). For an operator diagonal in a
known basis (the DCT heat blur, the identity, their compositions, and masks in the pixel
basis) the whole process is then a scalar Gaussian channel per coefficient
``u_k(t) = g_k(t) u_k(0) + s_t eta_k``, whose exact denoiser is the Wiener filter.

Any sampler driven by an affine denoiser is an affine map of its prior draw and of its
step noises, separately per coefficient. So one run of the *real* sampler function on a
few probe rows gives its output distribution exactly (:func:`grid_error`): row 0 (mean
prior draw, no noise) the output mean, row 1 (a unit prior perturbation of every
coefficient) the prior's gain, and row ``2 + j`` (unit noise at the ``j``-th draw only) that
draw's gain. The error is the squared 2-Wasserstein (Fréchet) distance between that output
Gaussian and the fit, and :func:`auto_grid` moves the interior times one at a time
(coordinate descent with a golden-section search between the neighbours) from the best
named grid. Nothing here touches the network: a grid costs a few seconds on a CPU.

The fit is diagonal in the DCT basis, so the computation is exact for DCT-diagonal
operators; for the pixel basis of a mask it keeps only the per-pixel variances (the fit's
diagonal there), an approximation. Operators with no diagonal form (``blur+mask``,
motion, strokes, ...) get no auto grid: :func:`auto_grid_supported` says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess
from ..corrupt.dct import dct2, dct_matrix, idct2
from ..corrupt.diagonal import PIXELS
from .core import Sampler, get
from .grids import check_grid, time_grid

__all__ = [
    "GaussianFit",
    "auto_grid",
    "auto_grid_supported",
    "auto_grid_problem",
    "grid_error",
    "resolve_grid",
    "ScriptedNoise",
]

_SWEEPS = 3
_SEARCH_ITERATIONS = 8  # golden-section shrinks each bracket by 0.618^8 ~ 0.02
_KEEP_OFF = 0.2  # a time moves within the middle 60 % of the gap between its neighbours
_START_GRIDS = ("uniform", "edm", "log-noise")
_STOPS = (0.01, 0.03, 0.1, 0.2, 0.35)
_RHOS = (0.6, 1.0, 1.5, 2.2, 3.0)


@dataclass(frozen=True)
class GaussianFit:
    """``N(mean, U^T diag(dct_variance) U)`` over ``(C, H, W)`` images, with ``U`` the orthonormal 2-D DCT."""

    mean: Tensor  # (C, H, W)
    dct_variance: Tensor  # (C, H, W), variances of the DCT coefficients of x0 - mean

    def __post_init__(self) -> None:
        if self.mean.ndim != 3 or self.mean.shape != self.dct_variance.shape:
            raise ValueError(
                "a Gaussian fit needs one (C, H, W) mean and DCT variances of the same shape, "
                f"got {tuple(self.mean.shape)} and {tuple(self.dct_variance.shape)}"
            )
        if not bool(torch.isfinite(self.mean).all()) or not bool((self.dct_variance >= 0).all()):
            raise ValueError("a Gaussian fit needs a finite mean and non-negative, finite variances")

    @classmethod
    def from_statistics(cls, stats) -> GaussianFit:
        """The fit a run stores with its preconditioning (``DataStatistics``: ``mean`` and ``spectrum``)."""
        return cls(stats.mean.to(torch.float64), stats.spectrum.to(torch.float64))

    @classmethod
    def from_covariance(cls, mean: Tensor, cov: Tensor, shape: tuple[int, int, int]) -> GaussianFit:
        """The DCT-diagonal part of ``N(mean, cov)`` over flattened images of ``shape``."""
        c, h, w = shape
        basis = torch.kron(
            torch.eye(c, dtype=torch.float64),
            torch.kron(dct_matrix(h, dtype=torch.float64), dct_matrix(w, dtype=torch.float64)),
        )
        variance = torch.einsum("ij,jk,ik->i", basis, cov.to(torch.float64), basis)
        return cls(mean.to(torch.float64).reshape(shape), variance.clamp_min(0).reshape(shape))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.mean.shape)  # type: ignore[return-value]


@dataclass(frozen=True)
class _Basis:
    """A basis in which ``C_t`` is diagonal: the change of basis and the gains at process time ``t``."""

    to_basis: Callable[[Tensor], Tensor]
    from_basis: Callable[[Tensor], Tensor]
    gains: Callable[[Tensor, Tensor], Tensor]  # (t (B,), x (B, C, H, W)) -> (B, C, H, W)
    pixels: bool


def _basis(process: CorruptionProcess, shape: tuple[int, int, int]) -> _Basis | None:
    probe = torch.zeros(1, *shape, dtype=torch.float64)
    if process.dct_gains(torch.zeros(1, dtype=torch.float64), probe) is not None:
        return _Basis(dct2, idct2, lambda t, x: process.dct_gains(t, x).to(x).expand_as(x), pixels=False)
    form = process.operator.diagonal_form()
    if form is None or form.basis != PIXELS:
        return None  # a basis other than pixels or the DCT: the fit's covariance there is not at hand

    def gains(t: Tensor, x: Tensor) -> Tensor:
        return form.gains(process.time(t, x), tuple(x.shape)).to(x)

    return _Basis(form.to_basis, form.from_basis, gains, pixels=True)


def auto_grid_supported(process: CorruptionProcess, shape: tuple[int, int, int]) -> bool:
    """Whether ``process`` on images of ``shape`` is diagonal in a basis where the fit is known."""
    return _basis(process, shape) is not None


def _fit_in(basis: _Basis, fit: GaussianFit) -> tuple[Tensor, Tensor]:
    """Mean and variances of the fit's coefficients in ``basis`` (the diagonal, for the pixel basis)."""
    mean = basis.to_basis(fit.mean[None])[0]
    if not basis.pixels:
        return mean, fit.dct_variance
    _, h, w = fit.shape
    dh, dw = dct_matrix(h, dtype=torch.float64).square(), dct_matrix(w, dtype=torch.float64).square()
    return mean, dh.T @ fit.dct_variance @ dw  # Var(x_ij) = sum_kl D_ki^2 D_lj^2 p_kl


class ScriptedNoise:
    """A noise source for probe rows: draw ``j`` is ``pattern`` in row ``first + j`` and zero elsewhere."""

    def __init__(self, rows: int, pattern: Tensor | None, first: int = 2) -> None:
        self.rows, self.pattern, self.first, self.draws = rows, pattern, first, 0

    def __len__(self) -> int:
        return self.rows

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        out = torch.zeros(tuple(shape), dtype=dtype)
        row = self.first + self.draws
        if self.pattern is not None and row < self.rows:
            out[row] = self.pattern.to(dtype)
        self.draws += 1
        return out


def _wiener(process: CorruptionProcess, basis: _Basis, mean: Tensor, variance: Tensor):
    """The exact ``E[x_0 | x_t]`` of the coefficient-wise Gaussian: ``m + g v (u - g m) / (g^2 v + s^2)``."""

    def denoiser(x: Tensor, t: Tensor) -> Tensor:
        g = basis.gains(t, x)
        s2 = process.s(t).to(x)[:, None, None, None] ** 2
        u = basis.to_basis(x)
        m, v = mean.to(x), variance.to(x)
        gain = g * v / (g.square() * v + s2).clamp_min(torch.finfo(x.dtype).tiny)
        return basis.from_basis(m + gain * (u - g * m))

    return denoiser


def grid_error(sampler: str | Sampler, process: CorruptionProcess, fit: GaussianFit, ts: Tensor) -> float:
    """Squared 2-Wasserstein distance from ``sampler``'s output on grid ``ts`` to the fit, exactly.

    The prior draw is the fit's own ``q_1`` (mean ``g_1 m``, variance ``g_1^2 v + s_1^2`` per
    coefficient), so the number measures the sampler and its grid alone.
    """
    basis = _basis(process, fit.shape)
    if basis is None:
        raise ValueError(f"grid 'auto' needs an operator diagonal in the DCT or pixel basis, not {process.operator!r}")
    run = get(sampler) if isinstance(sampler, str) else sampler
    ts = torch.as_tensor(ts, dtype=torch.float64)
    mean, variance = _fit_in(basis, fit)
    denoiser = _wiener(process, basis, mean, variance)
    one = torch.ones(1, dtype=torch.float64)
    g1 = basis.gains(one, fit.mean[None].to(torch.float64))[0]
    s1 = float(process.s(one)[0])
    mean1, var1 = g1 * mean, g1.square() * variance + s1**2

    counter = ScriptedNoise(1, None)
    start = basis.from_basis(mean1[None])
    run(denoiser, process, start, ts, generator=counter)
    rows = counter.draws + 2
    unit = basis.from_basis(torch.ones_like(mean)[None])[0]
    x = start.repeat(rows, 1, 1, 1)
    x[1] += unit
    out = basis.to_basis(run(denoiser, process, x, ts, generator=ScriptedNoise(rows, unit)))
    centre = out[0]
    out_var = (out[1] - centre).square() * var1 + (out[2:] - centre).square().sum(0)
    distance = (centre - mean).square().sum() + (out_var.sqrt() - variance.sqrt()).square().sum()
    value = float(distance)
    return value if math.isfinite(value) else math.inf


def _family(steps: int, stop: float, rho: float) -> Tensor:
    """``steps - 1`` steps from 1 to ``stop`` spaced as ``u^rho`` (``u`` even in [0, 1]), then the jump to 0."""
    if steps == 1:
        return torch.tensor([1.0, 0.0], dtype=torch.float64)
    u = torch.linspace(1, 0, steps, dtype=torch.float64)
    return torch.cat([stop + (1 - stop) * u**rho, torch.zeros(1, dtype=torch.float64)])


def _start(sampler: str | Sampler, process: CorruptionProcess, fit: GaussianFit, steps: int) -> Tensor:
    """The best grid of the ``(stop, rho)`` family and of the named grids (uniform, EDM, log-noise)."""
    candidates = [_family(steps, stop, rho) for stop in _STOPS for rho in _RHOS]
    for name in _START_GRIDS:
        try:
            candidates.append(time_grid(name, process, steps))
        except ValueError:
            continue  # e.g. a noise-level grid when s_t is constant
    errors = [grid_error(sampler, process, fit, ts) for ts in candidates]
    return candidates[min(range(len(candidates)), key=errors.__getitem__)]


def auto_grid(
    sampler: str | Sampler, process: CorruptionProcess, fit: GaussianFit, steps: int, sweeps: int = _SWEEPS
) -> Tensor:
    """The grid of ``steps`` steps (1 down to 0) with the least :func:`grid_error` found.

    Starts from the best grid of a two-parameter family (a stop time and a power spacing)
    and of the named grids, then moves each interior time in turn to its best place in the
    middle 60 % of the gap between its neighbours (golden-section search), for ``sweeps``
    sweeps or until a sweep gains under 0.5 %. Keeping away from the neighbours keeps
    every step useful: an exact-Gaussian optimum may otherwise pile steps at ``t ~ 0``.
    """
    ts = _start(sampler, process, fit, steps).clone()
    error = grid_error(sampler, process, fit, ts)
    for _ in range(sweeps):
        before = error
        for i in range(1, len(ts) - 1):
            ts, error = _place(sampler, process, fit, ts, i, error)
        if not before > 0 or (before - error) / before < 5e-3:
            break
    return ts


def _place(
    sampler: str | Sampler, process: CorruptionProcess, fit: GaussianFit, ts: Tensor, i: int, error: float
) -> tuple[Tensor, float]:
    """Golden-section search for time ``i`` in the middle of ``(ts[i+1], ts[i-1])`` (keeps ``ts`` if no better)."""
    hi, lo = float(ts[i - 1]), float(ts[i + 1])
    a, b = lo + _KEEP_OFF * (hi - lo), hi - _KEEP_OFF * (hi - lo)
    ratio = (math.sqrt(5) - 1) / 2

    def cost(value: float) -> float:
        trial = ts.clone()
        trial[i] = value
        return grid_error(sampler, process, fit, trial)

    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = cost(c), cost(d)
    for _ in range(_SEARCH_ITERATIONS):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = cost(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = cost(d)
    best_t, best = (c, fc) if fc < fd else (d, fd)
    if best < error:
        ts = ts.clone()
        ts[i] = best_t
        return ts, best
    return ts, error


def resolve_grid(
    grid: str | Tensor | Sequence[float],
    process: CorruptionProcess,
    steps: int,
    *,
    corruption=None,
    dataset: str | None = None,
    shape: tuple[int, ...] | None = None,
    sampler: str | Sampler | None = None,
    fit: GaussianFit | None = None,
) -> Tensor:
    """:func:`~softdiff.samplers.time_grid`, plus ``"auto"``, which needs the ``sampler`` and the data ``fit``."""
    if not (isinstance(grid, str) and grid == "auto"):
        return time_grid(grid, process, steps, corruption=corruption, dataset=dataset, shape=shape)
    problem = auto_grid_problem(process, fit)
    if problem is not None:
        raise ValueError(problem)
    if sampler is None:
        raise ValueError("grid 'auto' is optimised for one sampler: name it (resolve_grid(..., sampler=NAME))")
    return check_grid(auto_grid(sampler, process, fit, steps))


def auto_grid_problem(process: CorruptionProcess, fit: GaussianFit | None) -> str | None:
    """Why ``process`` with data ``fit`` can have no ``auto`` grid, or None when it can."""
    if fit is None:
        return (
            "grid 'auto' is optimised on a model's data fit, and this model has none "
            "(runs with a precond parameterisation store it); use uniform or edm"
        )
    if not auto_grid_supported(process, fit.shape):
        return (
            f"grid 'auto' needs an operator diagonal in the DCT or pixel basis (blur, mask, identity), "
            f"not {process.operator!r}; use uniform or edm"
        )
    return None
