"""PiGDM (Song et al. 2023): pseudo-inverse guidance through the vector-Jacobian product of the denoiser.

With ``p(x_0 | x_t) ~ N(x0_hat, r_t^2 I)`` the likelihood of ``y = A x_0 + n`` is Gaussian, and its
score with respect to ``x_t`` is (the paper's Eq. 5)

    g = J^T A^T u,   (r_t^2 A A^T + sigma_y^2 I) u = y - A x0_hat,   J = d x0_hat / d x_t,

one vector-Jacobian product through the network per step (``u`` by CG, treated as a constant).
The step is any sampler's update plus ``scale * s_t^2 * g``: for ``C = I`` Tweedie's formula
turns the guided score into the guided estimate ``x0_hat + s_t^2 g`` in the sampler's ``x0`` slot
(the noise direction ``eps_hat`` stays the network's, as in the paper's Algorithm 1), so with
the ``euler`` / ``ancestral`` samplers it is the paper's DDIM step with ``eta = 0`` / ``eta = 1``
in VE coordinates (tested in float64). For a corruption model the same term is
``C_t (E[x_0 | x_t, y] - x0_hat)``: the correction of what the process sees at ``t``.

``r_t^2`` is a curve ``t -> r_t^2``: the paper's ``s_t^2 / (1 + s_t^2)`` (unit-variance data,
``C = I``: :func:`paper_variance`) or the denoiser's measured error, as ``project`` uses.

**Weighting.** ``"tweedie"`` (above) adds ``s_t^2 g``, the exact guided estimate if ``g`` were
the exact likelihood score. ``"authors"`` adds ``r_t^2 g`` instead, which is what the authors'
released code does (NVlabs/RED-diff, ``algos/pgdm.py``, defaults ``awd=True``,
``grad_term_weight=1``, noiseless): its VP step ``sqrt(a_s) x0_hat + c1 z + c2 eps +
sqrt(a_s) sqrt(a_t) J_VP^T A^+ (y - A x0_hat)`` is, in VE coordinates, the DDIM step with
``x0_hat + J^T A^+ (y - A x0_hat)`` in its x0 slot, and ``r_t^2 g`` is exactly that at
``sigma_y = 0`` (``J^T A^T (r_t^2 A A^T)^-1 r_t^2 = J^T A^+``; tested in float64). The two differ
by ``s_t^2 / r_t^2``, which is ``1 + s_t^2`` with the paper's ``r_t^2``: thousands of times at
the top noise of a vanilla process, the reason ``tweedie`` fails there. ``"min"`` adds
``min(s_t^2, r_t^2) g``: the authors' weight where the noise dominates (a vanilla process, where
``r_t^2 < s_t^2`` always), Tweedie's where the corruption does (a blur process's small ``s_t``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess
from ..samplers import SeededNoise, Step, draw_prior, nfe, run, uniform_grid
from .linalg import conjugate_gradient
from .methods import DPS_UPDATES, Callback, DiffusionModel, Problem, _check_sampler
from .operators import Degradation

__all__ = ["PiGDM", "paper_variance", "PIGDM_WEIGHTINGS", "DEFAULT_PIGDM_WEIGHTING"]

Variance = Callable[[Tensor], Tensor]  # t (B,) -> r_t^2 (B,)
Weighting = Literal["tweedie", "authors", "min"]
PIGDM_WEIGHTINGS: tuple[Weighting, ...] = ("tweedie", "authors", "min")
DEFAULT_PIGDM_WEIGHTING: Weighting = "min"  # the better of the two on every measured cell (docs/restoration.md)


def paper_variance(process: CorruptionProcess) -> Variance:
    """``r_t^2 = s_t^2 / (1 + s_t^2)``: the posterior variance of unit-variance data under ``x_0 + s_t eta``."""

    def variance(t: Tensor) -> Tensor:
        s2 = process.s(t) ** 2
        return s2 / (1 + s2)

    return variance


@dataclass(frozen=True)
class PiGDM:
    """Pseudo-inverse guided sampling: ``update(step) + scale * w_t * J^T A^T (r_t^2 A A^T + sigma_y^2)^-1 r``.

    ``w_t`` is ``s_t^2`` (``weighting="tweedie"``), ``r_t^2`` (``"authors"``, their released code) or the
    smaller of the two (``"min"``).
    """

    variance: Variance
    scale: float = 1.0
    sampler: str = "euler"
    steps: int = 50
    cg_iters: int = 50
    cg_tol: float = 1e-5
    name: str = "pigdm"
    weighting: Weighting = DEFAULT_PIGDM_WEIGHTING

    def __post_init__(self) -> None:
        _check_sampler(self.sampler, self.steps)
        if self.sampler not in DPS_UPDATES:
            raise ValueError(f"PiGDM runs on the samplers {', '.join(DPS_UPDATES)}, not {self.sampler!r}")
        if not (math.isfinite(self.scale) and self.scale >= 0):
            raise ValueError(f"the PiGDM guidance scale must be a finite number >= 0, got {self.scale}")
        if self.weighting not in PIGDM_WEIGHTINGS:
            raise ValueError(f"unknown PiGDM weighting {self.weighting!r}; choose one of {', '.join(PIGDM_WEIGHTINGS)}")

    def nfe(self) -> int:
        return nfe(self.sampler, self.steps)

    def check(self, model: DiffusionModel, A: Degradation, sigma_y: float) -> None:
        return None

    def guidance(self, denoiser, x: Tensor, t: Tensor, problem: Problem) -> tuple[Tensor, Tensor, Tensor]:
        """``(x0_hat, g, r_t^2)`` at ``x_t``: the estimate, the likelihood score ``J^T A^T u`` and the variance."""
        A, y, var_y = problem.A, problem.y, problem.sigma_y**2
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0 = denoiser(xg, t)
            r2 = self.variance(t).to(x)[:, None, None, None]
            residual = (y - A(x0)).detach()
            u = conjugate_gradient(
                lambda v: r2 * A(A.adjoint(v)) + var_y * v, residual, iters=self.cg_iters, tol=self.cg_tol
            )
            (g,) = torch.autograd.grad(x0, xg, grad_outputs=A.adjoint(u))
        return x0.detach(), g, r2

    def sample(
        self, model: DiffusionModel, problem: Problem, noise: SeededNoise, callback: Callback | None = None
    ) -> Tensor:
        base, y = DPS_UPDATES[self.sampler], problem.y
        grads: list[tuple[Tensor, Tensor, Tensor]] = []

        def denoise(x: Tensor, t: Tensor) -> Tensor:
            x0, g, r2 = self.guidance(model.denoiser, x, t, problem)
            grads.append((x, g, r2))
            return x0

        def update(step: Step) -> Tensor:
            g, r2 = next((g, r2) for x, g, r2 in grads if x is step.x)  # Heun's second call is at another x
            grads.clear()
            s2 = torch.full_like(r2, step.s**2)
            weight = {"tweedie": s2, "authors": r2, "min": torch.minimum(s2, r2)}[self.weighting]
            return base(step) + self.scale * weight * g

        x = draw_prior(model.prior, noise, y.device, y.dtype)
        return run(update, denoise, model.process, x, uniform_grid(self.steps), generator=noise, callback=callback)
