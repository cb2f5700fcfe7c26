"""Gaussian blur ``C_t``: an exact DCT-basis heat blur and kornia's spatial blur.

The width ``sigma(t)`` comes from a schedule (log-linear by default). Two backends:

* ``"dct"`` (default): the exact Gaussian (heat) blur with Neumann (symmetric) boundary,
  diagonal in the DCT-II basis. It is separable, so each level is one ``H x H`` and one
  ``W x W`` matrix per sample: any width, one call, closed-form (self-) adjoint.
* ``"kornia"``: a sampled Gaussian kernel through ``kornia.filters.filter2d_separable``
  with a choice of border. Each sample's kernel reaches ±ceil(3 sigma) taps, clamped to
  the image side, so very wide blurs are truncated — see :meth:`GaussianBlur.truncated`.
  Its adjoint is exact via ``torch.func.vjp`` (borders other than ``constant``/``circular``
  make the spatial blur non-symmetric).
"""

from __future__ import annotations

from typing import Literal

import kornia
import torch
from torch import Tensor

from .base import LinearCorruption
from .dct import _dct_basis, dct_frequencies, dct_matrix
from .diagonal import DiagonalForm, dct_form
from .schedules import Geometric, Schedule

__all__ = ["GaussianBlur", "dct_matrix"]  # dct_matrix re-exported from .dct

Backend = Literal["dct", "kornia"]
Border = Literal["reflect", "replicate", "constant", "circular"]


def _heat_blur_1d(n: int, sigma: Tensor) -> Tensor:
    """Per-sample ``(B, n, n)`` symmetric matrices ``D^T diag(exp(-sigma^2 w^2 / 2)) D``."""
    d, freq2 = _dct_basis(n, sigma.device, sigma.dtype)
    gain = torch.exp(-0.5 * sigma[:, None] ** 2 * freq2)  # (B, n)
    return (d.T * gain[:, None, :]) @ d


class GaussianBlur(LinearCorruption):
    """Gaussian blur of width ``sigma(t)`` pixels, ``sigma(0) = sigma_min`` (≈ identity)."""

    strength_name = "blur_sigma"

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
            raise ValueError(
                "the dct backend has a fixed symmetric (Neumann) border; use backend='kornia' for other borders"
            )
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.schedule: Schedule = schedule or Geometric(max(sigma_min, 1e-6), max(sigma_max, 1e-6))
        self.backend, self.border = backend, border

    def sigma(self, t: Tensor) -> Tensor:
        """Blur width in pixels at each time."""
        return self.schedule(t)

    def strength(self, t: Tensor) -> Tensor:
        """The blur width ``sigma(t)`` (reported per level by level selection)."""
        return self.sigma(t)

    @staticmethod
    def max_taps(height: int, width: int) -> int:
        """Largest odd kernel the kornia path uses on both axes of an ``height x width`` image."""
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

    def diagonal_form(self) -> DiagonalForm | None:
        """The DCT backend is diagonal in the DCT-II basis; the sampled-kernel (kornia) blur in none known."""
        return dct_form(self._gains) if self.backend == "dct" else None

    def _gains(self, t: Tensor, shape: tuple[int, ...]) -> Tensor:
        """``exp(-sigma^2 (w_h^2 + w_w^2) / 2)`` per DCT coefficient."""
        freq2 = dct_frequencies(shape[-2], shape[-1], t.device, t.dtype)
        return torch.exp(-0.5 * self.sigma(t)[:, None, None, None] ** 2 * freq2).expand(shape)

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        if self.backend == "dct" or self.border in ("constant", "circular"):
            return self.forward(y, t)  # symmetric kernel + self-adjoint border
        return super().adjoint(y, t)

    def _dct(self, x: Tensor, sigma: Tensor) -> Tensor:
        # Two batched matmuls with the per-sample symmetric 1-D blurs, channels folded into
        # the matrix side so no (B, C, n, n) broadcast copy is made.
        b, c, h, w = x.shape
        blur_h = _heat_blur_1d(h, sigma)  # (B, H, H)
        blur_w = blur_h if w == h else _heat_blur_1d(w, sigma)
        rows = x.reshape(b, c * h, w) @ blur_w  # blur along W
        cols = blur_h @ rows.reshape(b, c, h, w).transpose(1, 2).reshape(b, h, c * w)  # along H
        return cols.reshape(b, h, c, w).transpose(1, 2).contiguous()

    def _kornia(self, x: Tensor, sigma: Tensor) -> Tensor:
        _, _, h, w = x.shape
        kernel_y, kernel_x = _gaussian_taps(sigma, h - 1), _gaussian_taps(sigma, w - 1)
        return kornia.filters.filter2d_separable(x, kernel_x, kernel_y, border_type=self.border)


def _gaussian_taps(sigma: Tensor, max_radius: int) -> Tensor:
    """Per-sample normalised ``(B, 2R + 1)`` Gaussian kernels, each cut at its own ±ceil(3 sigma).

    Each sample's kernel depends on its own width only (zero taps pad it to the batch's
    longest), so a batch gives the same result as blurring one sample at a time.
    ``max_radius`` keeps the padding legal for every border mode (``< image side``).
    """
    radius = torch.ceil(3 * sigma.detach()).clamp_min(1).clamp_max(max_radius).long()  # (B,)
    big = int(radius.max())
    offsets = torch.arange(-big, big + 1, device=sigma.device, dtype=sigma.dtype)
    s = sigma.clamp_min(1e-6)[:, None]
    taps = torch.exp(-0.5 * (offsets / s) ** 2) * (offsets.abs() <= radius[:, None])
    return taps / taps.sum(dim=1, keepdim=True)
