"""Gaussian data ``x_0 ~ N(m, S)``: the one case where every quantity is known exactly.

For any linear ``C_t``, ``q_t`` is ``N(C_t m, C_t S C_t^T + s_t^2 I)``, so its score and the
exact denoiser ``E[x_0 | x_t]`` have closed forms. Tests of objectives and samplers (and
users checking a new operator) compare against these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess

__all__ = ["GaussianData"]


@dataclass(frozen=True)
class GaussianData:
    """``N(mean, cov)`` over flattened images of ``shape = (C, H, W)`` (float64 math)."""

    mean: Tensor
    cov: Tensor
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        n = math.prod(self.shape)
        if self.mean.shape != (n,) or self.cov.shape != (n, n):
            raise ValueError(f"mean must be ({n},) and cov ({n}, {n}) for images of shape {self.shape}")

    @classmethod
    def random(
        cls, shape: tuple[int, int, int], generator: torch.Generator | None = None, scale: float = 0.5
    ) -> GaussianData:
        """A random mean and a random well-conditioned covariance."""
        n = math.prod(shape)
        mean = torch.randn(n, generator=generator, dtype=torch.float64) * scale
        root = torch.randn(n, n, generator=generator, dtype=torch.float64) * (scale / math.sqrt(n))
        return cls(mean, root @ root.T + 0.05 * scale**2 * torch.eye(n, dtype=torch.float64), shape)

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.mean + z @ torch.linalg.cholesky(self.cov).T).reshape(n, *self.shape)

    def marginal(self, process: CorruptionProcess, t: float) -> tuple[Tensor, Tensor, Tensor]:
        """``(C_t, mean, cov)`` of ``q_t``, with ``C_t`` as a dense matrix."""
        warped = float(process.time(t, torch.zeros(1, *self.shape, dtype=torch.float64)))
        c = process.operator.matrix(self.shape, warped)
        s2 = float(process.s(torch.tensor(t, dtype=torch.float64))) ** 2
        return c, c @ self.mean, c @ self.cov @ c.T + s2 * torch.eye(self.dim, dtype=torch.float64)

    def _per_time(self, process: CorruptionProcess, xt: Tensor, t: Tensor | float, fn) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).expand(xt.shape[0])
        flat = xt.reshape(xt.shape[0], -1).to(torch.float64)
        out = torch.empty_like(flat)
        for value in t.unique():
            rows = t == value
            out[rows] = fn(*self.marginal(process, float(value)), flat[rows])
        return out.reshape(xt.shape).to(xt.dtype)

    def denoiser(self, process: CorruptionProcess):
        """The exact ``E[x_0 | x_t]`` as a denoiser ``(x_t, t) -> x0_hat``."""

        def posterior_mean(c: Tensor, mt: Tensor, st: Tensor, x: Tensor) -> Tensor:
            return self.mean + torch.linalg.solve(st, (x - mt).T).T @ (c @ self.cov)

        return lambda xt, t: self._per_time(process, xt, t, posterior_mean)

    def score(self, process: CorruptionProcess):
        """The exact score ``grad log q_t(x_t)`` as a function ``(x_t, t) -> score``."""

        def gaussian_score(c: Tensor, mt: Tensor, st: Tensor, x: Tensor) -> Tensor:
            return -torch.linalg.solve(st, (x - mt).T).T

        return lambda xt, t: self._per_time(process, xt, t, gaussian_score)
