"""DiffPIR (Zhu et al. 2023): a proximal data step on ``x0_hat`` inside the sampler, then re-noising with ``zeta``.

Per step ``t -> t'``, with ``x0_hat = D(x_t, t)``:

    x0_y  = argmin_x ||y - A x||^2 + rho_t ||x - x0_hat||^2,     rho_t = lambda sigma_y^2 / s_t^2
    eps   = (x_t - C_t x0_y) / s_t
    x_t'  = C_t' x0_y + s_t' (sqrt(1 - zeta) eps + sqrt(zeta) z)

The paper writes it for a VP model with ``sigma_bar_t = sqrt(1 - abar_t) / sqrt(abar_t)``; in the
VE coordinates ``x / sqrt(abar_t)`` that is the noise level ``s_t``, so with ``C = I`` the lines
above are the paper's update (tested in float64 against its VP form). For a corruption model
the data step is the same and ``C_t'`` re-corrupts the estimate. The prox is solved by CG in the
push-through form, so ``sigma_y = 0`` is the exact projection onto ``A x = y``. The last step
returns ``C_0 x0_y``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..samplers import SeededNoise, Step, draw_prior, nfe, run, uniform_grid
from .linalg import proximal_step
from .methods import Callback, DiffusionModel, Problem
from .operators import Degradation

__all__ = ["DiffPIR"]


@dataclass(frozen=True)
class DiffPIR:
    """DiffPIR with the data weight ``lam`` (``rho_t = lam sigma_y^2 / s_t^2``) and the re-noising ``zeta``."""

    lam: float = 1.0
    zeta: float = 0.3
    steps: int = 50
    cg_iters: int = 50
    cg_tol: float = 1e-5
    name: str = "diffpir"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"DiffPIR's lambda must be a finite number > 0, got {self.lam}")
        if not 0 <= self.zeta <= 1:
            raise ValueError(f"DiffPIR's zeta must lie in [0, 1], got {self.zeta}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")

    def nfe(self) -> int:
        return nfe("euler", self.steps)

    def check(self, model: DiffusionModel, A: Degradation, sigma_y: float) -> None:
        return None

    def rho(self, s: float, sigma_y: float) -> float:
        return self.lam * sigma_y**2 / s**2

    def update(self, step: Step) -> Tensor:
        """Re-noise the (already data-corrected) ``x0_hat`` of ``step`` with ``zeta``."""
        process = step.process
        eps = (step.x - process.C(step.x0_hat, step.t)) / step.s
        mix = math.sqrt(1 - self.zeta) * eps + math.sqrt(self.zeta) * step.noise()
        return process.C(step.x0_hat, step.t_next) + step.s_next * mix

    def sample(
        self, model: DiffusionModel, problem: Problem, noise: SeededNoise, callback: Callback | None = None
    ) -> Tensor:
        A, y, sigma_y = problem.A, problem.y, problem.sigma_y

        def denoise(x: Tensor, t: Tensor) -> Tensor:
            s = float(model.process.s(t[:1].to(torch.float64)))
            x0 = model.denoiser(x, t)
            return proximal_step(A, x0, y, self.rho(s, sigma_y), iters=self.cg_iters, tol=self.cg_tol)

        x = draw_prior(model.prior, noise, y.device, y.dtype)
        return run(self.update, denoise, model.process, x, uniform_grid(self.steps), generator=noise, callback=callback)
