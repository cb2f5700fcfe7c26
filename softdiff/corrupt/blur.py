"""Gaussian blur ``C_t``: an exact DCT-basis heat blur and kornia's spatial blur.

The width ``sigma(t)`` comes from a schedule (log-linear by default). Two backends:

* ``"dct"`` (default): the exact Gaussian (heat) blur with Neumann (symmetric) boundary,
  diagonal in the DCT-II basis. It is separable, so each level is one ``H x H`` and one
  ``W x W`` matrix per sample: any width, one call, closed-form (self-) adjoint.
* ``"kornia"``: ``kornia.filters.gaussian_blur2d`` with a choice of border. Its kernel is
  clamped to the image (``2 * min(H, W) - 1`` taps), so very wide blurs are truncated —
  see :meth:`GaussianBlur.truncated`. Its adjoint is exact via ``torch.func.vjp``
  (borders other than ``constant``/``circular`` make the spatial blur non-symmetric).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import kornia
import torch
from torch import Tensor

from .base import LinearCorruption
from .schedules import Geometric, Schedule

__all__ = ["GaussianBlur", "dct_matrix"]

Backend = Literal["dct", "kornia"]
Border = Literal["reflect", "replicate", "constant", "circular"]


@functools.lru_cache(maxsize=32)
def _dct_basis(n: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Orthonormal DCT-II matrix ``D`` (rows = frequencies) and squared frequencies ``(pi k / n)^2``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    freq2 = (math.pi * torch.arange(n, dtype=torch.float64) / n) ** 2
    return d.to(device, dtype), freq2.to(device, dtype)


def dct_matrix(n: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The orthonormal ``n x n`` DCT-II matrix (``D @ D.T == I``)."""
    return _dct_basis(n, torch.device(device or "cpu"), dtype)[0]


def _heat_blur_1d(n: int, sigma: Tensor) -> Tensor:
    """Per-sample ``(B, n, n)`` symmetric matrices ``D^T diag(exp(-sigma^2 w^2 / 2)) D``."""
    d, freq2 = _dct_basis(n, sigma.device, sigma.dtype)
    gain = torch.exp(-0.5 * sigma[:, None] ** 2 * freq2)  # (B, n)
    return (d.T * gain[:, None, :]) @ d


class GaussianBlur(LinearCorruption):
    """Gaussian blur of width ``sigma(t)`` pixels, ``sigma(0) = sigma_min`` (≈ identity)."""

    def __init__(
        self,
        sigma_min: float = 0.01,
        sigma_max: float = 10.0,
        schedule: Schedule | None = None,
        backend: Backend = "dct",
        border: Border = "reflect",
    ) -> None:
        if not 0 <= sigma_min <= sigma_max:
            raise ValueError(f"blur widths need 0 <= sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
        if backend not in ("dct", "kornia"):
            raise ValueError(f"unknown blur backend {backend!r}; choose 'dct' or 'kornia'")
        if border not in ("reflect", "replicate", "constant", "circular"):
            raise ValueError(f"unknown border {border!r}; choose reflect, replicate, constant or circular")
        if backend == "dct" and border != "reflect":
            raise ValueError("the dct backend has a fixed symmetric (Neumann) border; use backend='kornia' for other borders")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.schedule: Schedule = schedule or Geometric(max(sigma_min, 1e-6), max(sigma_max, 1e-6))
        self.backend, self.border = backend, border

    def sigma(self, t: Tensor) -> Tensor:
        """Blur width in pixels at each time."""
        return self.schedule(t)

    @staticmethod
    def max_taps(height: int, width: int) -> int:
        """Largest odd kernel the kornia path can use on an ``height x width`` image."""
        return 2 * min(height, width) - 1

    def truncated(self, t: Tensor | float, height: int, width: int) -> Tensor:
        """Where the kornia kernel (±3 sigma) is clamped to the image: that blur is not exactly Gaussian."""
        sigma = self.sigma(torch.as_tensor(t, dtype=torch.float64))
        return (2 * torch.ceil(3 * sigma) + 1 > self.max_taps(height, width)) & (self.backend == "kornia")

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        sigma = self.sigma(t)
        if self.backend == "dct":
            return self._dct(x, sigma)
        return self._kornia(x, sigma)

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        if self.backend == "dct" or self.border in ("constant", "circular"):
            return self.forward(y, t)  # symmetric kernel + self-adjoint border
        return super().adjoint(y, t)

    def _dct(self, x: Tensor, sigma: Tensor) -> Tensor:
        _, _, h, w = x.shape
        blur_h = _heat_blur_1d(h, sigma)[:, None]  # (B, 1, H, H)
        blur_w = blur_h if w == h else _heat_blur_1d(w, sigma)[:, None]
        return blur_h @ x @ blur_w  # both symmetric, so right-multiplying blurs the rows

    def _kornia(self, x: Tensor, sigma: Tensor) -> Tensor:
        _, _, h, w = x.shape
        taps = int(2 * math.ceil(3 * float(sigma.max())) + 1)
        taps = min(max(3, taps), self.max_taps(h, w))
        sigmas = sigma.clamp_min(1e-6)[:, None].expand(-1, 2)
        return kornia.filters.gaussian_blur2d(x, (taps, taps), sigmas, border_type=self.border)
