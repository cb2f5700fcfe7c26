"""Posterior sampling for ``y = A x + n``, ``n ~ N(0, sigma_y^2 I)``, with a trained corruption model.

Each method draws one posterior sample per row of ``problem.y`` from a per-row noise source
(:class:`~softdiff.samplers.SeededNoise`), on top of the public samplers:

* :class:`LevelEntry`: ``A = C_tau`` of the model's process and ``sigma_y <= s_tau``. Then
  ``y + sqrt(s_tau^2 - sigma_y^2) z`` is a draw of ``x_tau`` given ``x_0 = x``, and any
  registered sampler from ``tau`` to 0 samples ``p(x_0 | x_tau)``: exactly ``p(x | y)`` when
  ``sigma_y = s_tau``; for ``sigma_y < s_tau`` the top-up noise throws some of ``y`` away.
* :class:`Project`: the sampler runs with the *conditional* denoiser
  ``E[x_0 | x_t, y] = D + S_t A^T (A S_t A^T + sigma_y^2 I)^{-1} (y - A D)``, exact when
  ``p(x_0 | x_t) = N(D, S_t)``. Default ``S_t = r_t^2 I`` (r_t^2 the denoiser's measured
  error), which makes it a proximal data step ``D + (A^T A + lambda_t I)^{-1} A^T (y - A D)``,
  ``lambda_t = sigma_y^2 / r_t^2`` (DDNM's null-space projection when ``sigma_y = 0``);
  solved by conjugate gradients with ``A`` and ``A^T`` only.
* :class:`DPS` (Chung et al. 2023): each sampler step is followed by
  ``x <- x - zeta * grad_x ||y - A D(x, t)||``, the gradient through the denoiser by autograd.
* :class:`Tikhonov` and :class:`Wiener`: the linear baselines (no network).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess, LevelTable
from ..samplers import (
    DenoiserFn,
    Prior,
    SeededNoise,
    Step,
    ancestral_update,
    draw_prior,
    euler_update,
    get,
    heun_update,
    momentum_update,
    naive_update,
    nfe,
    randn,
    run,
    uniform_grid,
)
from .linalg import conjugate_gradient, gaussian_posterior_mean, tikhonov
from .operators import Degradation

__all__ = [
    "DiffusionModel",
    "Problem",
    "Method",
    "LevelEntry",
    "Project",
    "DPS",
    "Tikhonov",
    "Wiener",
    "Isotropic",
    "Covariance",
    "estimate_posterior_variance",
    "DPS_UPDATES",
]

Callback = Callable[[dict[str, Any]], None]
Covariance = Callable[[Tensor, Tensor], Tensor]  # (v, t) -> S_t v, t of shape (B,)


class DiffusionModel(Protocol):
    """What restoration needs from a trained model (a ``TrainedRun`` is one)."""

    denoiser: DenoiserFn
    process: CorruptionProcess
    prior: Prior


@dataclass(frozen=True)
class Problem:
    """``y = A x + n`` with one row of ``y`` per posterior sample to draw."""

    A: Degradation
    y: Tensor
    sigma_y: float


class Method(Protocol):
    name: str
    steps: int  # sampler steps per sample (0 for the linear baselines)

    def nfe(self) -> int:
        """Network evaluations per sample."""
        ...

    def check(self, model: DiffusionModel, A: Degradation, sigma_y: float) -> None:
        """Raise a ``ValueError`` saying why this method cannot solve the problem."""
        ...

    def sample(
        self, model: DiffusionModel, problem: Problem, noise: SeededNoise, callback: Callback | None = None
    ) -> Tensor:
        """One posterior sample per row of ``problem.y``."""
        ...


def _check_sampler(name: str, steps: int) -> None:
    get(name)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


# ---- level entry -----------------------------------------------------------------------


@dataclass(frozen=True)
class LevelEntry:
    """Enter the reverse process at the level ``tau`` with ``C_tau = A``; ``steps`` steps from tau to 0."""

    sampler: str = "momentum"
    steps: int = 50
    name: str = "level"

    def __post_init__(self) -> None:
        _check_sampler(self.sampler, self.steps)

    def nfe(self) -> int:
        return nfe(self.sampler, self.steps)

    @staticmethod
    def noise_at(model: DiffusionModel, A: Degradation) -> tuple[float, float]:
        """``(tau, s_tau)`` of the level ``A`` is, or a ValueError when it is none."""
        if A.level is None:
            raise ValueError(
                f"{A.spec} is not a level C_t of the model's process, so level entry cannot start from it; "
                "use level:t=... for the model's own C_t, or the project, dps, ddrm, diffpir or pigdm method"
            )
        tau = float(A.level)
        return tau, float(model.process.s(torch.tensor(tau, dtype=torch.float64)))

    def check(self, model: DiffusionModel, A: Degradation, sigma_y: float) -> None:
        tau, s_tau = self.noise_at(model, A)
        if tau <= 0:
            raise ValueError(f"{A.spec} is the model's C_0: there is nothing to restore by level entry")
        if sigma_y > s_tau * (1 + 1e-9):
            raise ValueError(
                f"level entry needs sigma_y <= s_tau: the model's noise at the level of {A.spec} (t={tau:.4g}) "
                f"is {s_tau:.4g}, below sigma_y = {sigma_y:g}; use the dps or project method"
            )

    def sample(
        self, model: DiffusionModel, problem: Problem, noise: SeededNoise, callback: Callback | None = None
    ) -> Tensor:
        tau, s_tau = self.noise_at(model, problem.A)
        y = problem.y
        top_up = math.sqrt(max(s_tau**2 - problem.sigma_y**2, 0.0))
        x = y + top_up * randn(noise, y.shape, device=y.device, dtype=y.dtype)
        ts = uniform_grid(self.steps, t_max=tau)
        return get(self.sampler)(model.denoiser, model.process, x, ts, generator=noise, callback=callback)


# ---- projection onto the data (conditional denoiser) -------------------------------------


@dataclass(frozen=True)
class Isotropic:
    """``S_t = r_t^2 I``: the posterior covariance as a scalar variance curve ``t -> r_t^2``."""

    variance: Callable[[Tensor], Tensor]

    def __call__(self, v: Tensor, t: Tensor) -> Tensor:
        return self.variance(t).to(v.dtype)[:, None, None, None] * v


@torch.no_grad()
def estimate_posterior_variance(
    model: DiffusionModel,
    images: Tensor,
    *,
    knots: int = 17,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> LevelTable:
    """``r_t^2 = E ||D(x_t, t) - x_0||^2 / D`` at ``knots`` even times (linear in between).

    For the exact denoiser this is the average posterior variance per pixel, ``tr S_t / D``:
    the isotropic ``S_t`` that :class:`Project` uses. ``images`` are clean training images.
    """
    if images.ndim != 4 or len(images) < 1:
        raise ValueError(f"need clean images (N, C, H, W) to measure the denoiser's error, got {tuple(images.shape)}")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for t in torch.linspace(0, 1, knots, dtype=torch.float64).tolist():
        total, count = 0.0, 0
        for chunk in images.split(batch_size):
            x0 = chunk.to(device)
            eta = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(device)
            xt = model.process.corrupt(x0, t, noise=eta)
            err = model.denoiser(xt, torch.full((len(x0),), t, dtype=x0.dtype, device=device)) - x0
            total += float(err.double().pow(2).sum())
            count += x0.numel()
        values.append(total / count)
    return LevelTable(values)


@dataclass(frozen=True)
class Project:
    """Any registered sampler run with the conditional denoiser ``E[x_0 | x_t, y]`` (Gaussian ``p(x_0 | x_t)``)."""

    cov: Covariance
    sampler: str = "momentum"
    steps: int = 50
    cg_iters: int = 50
    cg_tol: float = 1e-5
    name: str = "project"

    def __post_init__(self) -> None:
        _check_sampler(self.sampler, self.steps)

    def nfe(self) -> int:
        return nfe(self.sampler, self.steps)

    def check(self, model: DiffusionModel, A: Degradation, sigma_y: float) -> None:
        return None

    def conditional_denoiser(self, denoiser: DenoiserFn, problem: Problem) -> DenoiserFn:
        """``(x_t, t) -> D + S_t A^T u`` with ``(A S_t A^T + sigma_y^2 I) u = y - A D`` solved by CG."""
        A, y, var_y = problem.A, problem.y, problem.sigma_y**2

        def denoise(x: Tensor, t: Tensor) -> Tensor:
            x0 = denoiser(x, t)
            residual = y - A(x0)
            u = conjugate_gradient(
                lambda v: A(self.cov(A.adjoint(v), t)) + var_y * v, residual, iters=self.cg_iters, tol=self.cg_tol
            )
            return x0 + self.cov(A.adjoint(u), t)

        return denoise

    def sample(
        self, model: DiffusionModel, problem: Problem, noise: SeededNoise, callback: Callback | None = None
    ) -> Tensor:
        x = draw_prior(model.prior, noise, problem.y.device, problem.y.dtype)
        denoise = self.conditional_denoiser(model.denoiser, problem)
        return get(self.sampler)(
            denoise, model.process, x, uniform_grid(self.steps), generator=noise, callback=callback
        )


# ---- DPS -------------------------------------------------------------------------------------

DPS_UPDATES: dict[str, Callable[[Step], Tensor]] = {
    "ancestral": ancestral_update,
    "momentum": momentum_update,
    "naive": naive_update,
    "euler": euler_update,
    "heun": heun_update,
}


@dataclass(frozen=True)
class DPS:
    """Diffusion posterior sampling: a sampler step, then ``x -= scale * grad_x ||y - A D(x, t)||``.

    Chung et al.'s step ``zeta_i = zeta' / ||y - A x0_hat||`` on the squared norm is this step
    on the norm with ``scale = 2 zeta'``. Each step also back-propagates through the network.
    """

    scale: float = 1.0
    sampler: str = "momentum"
    steps: int = 50
    name: str = "dps"

    def __post_init__(self) -> None:
        _check_sampler(self.sampler, self.steps)
        if self.sampler not in DPS_UPDATES:
            raise ValueError(f"DPS runs on the samplers {', '.join(DPS_UPDATES)}, not {self.sampler!r}")
        if not self.scale >= 0:
            raise ValueError(f"the DPS step scale must be >= 0, got {self.scale}")

    def nfe(self) -> int:
        return nfe(self.sampler, self.steps)

    def check(self, model: DiffusionModel, A: Degradation, sigma_y: float) -> None:
        return None

    def sample(
        self, model: DiffusionModel, problem: Problem, noise: SeededNoise, callback: Callback | None = None
    ) -> Tensor:
        A, y, base = problem.A, problem.y, DPS_UPDATES[self.sampler]
        grads: list[tuple[Tensor, Tensor]] = []

        def denoise(x: Tensor, t: Tensor) -> Tensor:
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                x0 = model.denoiser(xg, t)
                norm = ((y - A(x0)).flatten(1).pow(2).sum(1) + 1e-30).sqrt()  # per image: rows stay independent
                (grad,) = torch.autograd.grad(norm.sum(), xg)
            grads.append((x, grad))
            return x0.detach()

        def update(step: Step) -> Tensor:
            grad = next(g for x, g in grads if x is step.x)  # Heun's second call is at another x
            grads.clear()
            return base(step) - self.scale * grad

        x = draw_prior(model.prior, noise, y.device, y.dtype)
        return run(update, denoise, model.process, x, uniform_grid(self.steps), generator=noise, callback=callback)


# ---- linear baselines ------------------------------------------------------------------------


@dataclass(frozen=True)
class Tikhonov:
    """``m + (A^T A + lam I)^{-1} A^T (y - A m)``: no network, every sample the same."""

    lam: float
    mean: Tensor | None = None
    iters: int = 200
    name: str = "tikhonov"
    steps: int = 0

    def nfe(self) -> int:
        return 0

    def check(self, model: DiffusionModel, A: Degradation, sigma_y: float) -> None:
        return None

    def sample(
        self, model: DiffusionModel | None, problem: Problem, noise: SeededNoise, callback: Callback | None = None
    ) -> Tensor:
        mean = None if self.mean is None else self.mean.to(problem.y)
        return tikhonov(problem.A, problem.y, self.lam, mean, iters=self.iters)


@dataclass(frozen=True)
class Wiener:
    """The Gaussian posterior mean with the data's mean and covariance: the best linear estimate."""

    mean: Tensor  # (C, H, W)
    cov: Tensor  # (D, D), float64
    iters: int = 200
    name: str = "wiener"
    steps: int = 0

    def nfe(self) -> int:
        return 0

    def check(self, model: DiffusionModel, A: Degradation, sigma_y: float) -> None:
        return None

    def sample(
        self, model: DiffusionModel | None, problem: Problem, noise: SeededNoise, callback: Callback | None = None
    ) -> Tensor:
        y = problem.y.double()  # S is far from definite (constant border pixels): CG needs float64
        cov = self.cov.to(y)

        def apply(v: Tensor) -> Tensor:
            return (v.flatten(1) @ cov).reshape(v.shape)

        # a tiny jitter keeps A S A^T + sigma_y^2 I definite when sigma_y = 0
        var = max(problem.sigma_y**2, 1e-6 * float(cov.diagonal().mean()))
        x = gaussian_posterior_mean(problem.A, y, math.sqrt(var), self.mean.to(y), apply, iters=self.iters)
        return x.to(problem.y.dtype)
