"""DDRM (Kawar et al. 2022): denoising diffusion restoration, one singular coordinate of ``A`` at a time.

In the SVD ``A = U diag(s_i) V^T`` (:mod:`softdiff.restore.svd`) the observation is
``ybar = Sigma^+ U^T y``: coordinate ``i`` sees ``x_i`` with noise ``nu_i = sigma_y / s_i``. With
``x0_hat`` and the noise estimate ``eps_hat = (x_t - C_t x0_hat) / s_t`` in ``V^T`` coordinates,
the step ``t -> t'`` is the paper's Eq. 8 (with ``sigma_t' = s_t'``):

* ``s_i = 0`` (y sees nothing): ``x0_hat + s_t' (sqrt(1 - eta^2) eps_hat + eta z)``;
* ``s_t' < nu_i`` (y is noisier than the target level):
  ``x0_hat + s_t' (sqrt(1 - eta^2) (ybar - x0_hat) / nu_i + eta z)``;
* ``s_t' >= nu_i``: ``(1 - eta_b) x0_hat + eta_b ybar + sqrt(s_t'^2 - eta_b^2 nu_i^2) z``.

Each coordinate splits into a signal part (the terms in ``x0_hat`` and ``ybar`` alone) and a
noise part; for any corruption model the next state is ``C_t' (V signal) + V noise``, the form
``C_t x_0 + s_t eta`` of the process. With ``C = I`` it is the paper's update exactly (tested in
float64 against a coordinate-by-coordinate transcription). The last step returns the signal
part at ``s_0`` (y's coordinates mixed in by ``eta_b`` where ``s_0 >= nu_i``). The start is the
model's prior at t = 1, as for ``project`` and DPS; the paper's VE start ``N(ybar, sigma_T^2 - nu^2)``
differs from it by ``O(|ybar| / sigma_T)`` for a vanilla model with a large ``sigma_T``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..samplers import SeededNoise, Step, draw_prior, nfe, run, uniform_grid
from .methods import Callback, DiffusionModel, Problem
from .operators import Degradation
from .svd import DENSE_LIMIT, SingularForm, singular_form

__all__ = ["DDRM", "ddrm_parts"]

SUPPORTED = (
    "blur (DCT), mask, box, pixelate at a whole factor, the model's own diagonal levels, "
    f"and any operator on images of at most {DENSE_LIMIT} values (dense SVD)"
)


def _check_unit(name: str, value: float) -> None:
    if not 0 <= value <= 1:  # also rejects NaN and infinities
        raise ValueError(f"DDRM's {name} must lie in [0, 1], got {value}")


def ddrm_parts(
    form: SingularForm, x0: Tensor, eps: Tensor, z: Tensor, y: Tensor, sigma_y: float, s_next: float, eta: float,
    eta_b: float,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``(signal, noise)`` of DDRM's next state in pixel space (Eq. 8), before the process's ``C_t'``."""
    vals = form.values.to(x0)
    c_x0, c_eps, c_z, ybar = form.to_coeffs(x0), form.to_coeffs(eps), form.to_coeffs(z), form.pinv_coeffs(y)
    seen = vals > 0
    nu = torch.where(seen, sigma_y / torch.where(seen, vals, torch.ones_like(vals)), torch.inf)
    noisier = seen & (s_next < nu)
    cleaner = seen & ~noisier
    keep = (1 - eta**2) ** 0.5
    signal = torch.where(cleaner, (1 - eta_b) * c_x0 + eta_b * ybar, c_x0)
    safe_nu = torch.where(noisier, nu, torch.ones_like(nu))
    noise = torch.where(
        noisier,
        s_next * (keep * (ybar - c_x0) / safe_nu + eta * c_z),
        s_next * (keep * c_eps + eta * c_z),
    )
    spread = (s_next**2 - eta_b**2 * torch.where(cleaner, nu, torch.zeros_like(nu)) ** 2).clamp_min(0).sqrt()
    noise = torch.where(cleaner, spread * c_z, noise)
    return form.from_coeffs(signal), form.from_coeffs(noise)


@dataclass(frozen=True)
class DDRM:
    """DDRM with its ``eta`` (stochasticity of unobserved and noisy coordinates) and ``eta_b`` (trust in y).

    Defaults are the paper's (``eta = 0.85``, ``eta_b = 1``). ``steps`` network calls per sample.
    """

    eta: float = 0.85
    eta_b: float = 1.0
    steps: int = 50
    name: str = "ddrm"

    def __post_init__(self) -> None:
        _check_unit("eta", self.eta)
        _check_unit("eta_b", self.eta_b)
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")

    def nfe(self) -> int:
        return nfe("euler", self.steps)

    @staticmethod
    def form(A: Degradation, shape: tuple[int, int, int]) -> SingularForm:
        form = singular_form(A, shape)
        if form is None:
            raise ValueError(
                f"DDRM needs the SVD of the operator, and {A.spec} on {shape} images has none here; "
                f"DDRM supports {SUPPORTED}. For this operator use project, dps, diffpir or pigdm"
            )
        return form

    def check(self, model: DiffusionModel, A: Degradation, sigma_y: float) -> None:
        shape = getattr(getattr(model, "prior", None), "shape", None)
        if shape is not None:
            self.form(A, tuple(shape))

    def update(self, form: SingularForm, problem: Problem) -> Callable[[Step], Tensor]:
        """The step rule ``Step -> x_t'`` for ``problem``."""

        def rule(step: Step) -> Tensor:
            process = step.process
            eps = (step.x - process.C(step.x0_hat, step.t)) / step.s
            signal, noise = ddrm_parts(
                form, step.x0_hat, eps, step.noise(), problem.y, problem.sigma_y, step.s_next, self.eta, self.eta_b
            )
            return process.C(signal, step.t_next) + noise

        return rule

    def sample(
        self, model: DiffusionModel, problem: Problem, noise: SeededNoise, callback: Callback | None = None
    ) -> Tensor:
        y = problem.y
        form = self.form(problem.A, tuple(y.shape[1:]))
        ts = uniform_grid(self.steps)
        s_last = float(model.process.s(ts[-1].to(torch.float64)))
        calls = [0]

        def denoise(x: Tensor, t: Tensor) -> Tensor:
            x0 = model.denoiser(x, t)
            calls[0] += 1
            if calls[0] < self.steps:
                return x0
            zero = torch.zeros_like(x0)  # the last step: only the signal part (no noise is added)
            return ddrm_parts(form, x0, zero, zero, y, problem.sigma_y, s_last, self.eta, self.eta_b)[0]

        x = draw_prior(model.prior, noise, y.device, y.dtype)
        return run(self.update(form, problem), denoise, model.process, x, ts, generator=noise, callback=callback)
