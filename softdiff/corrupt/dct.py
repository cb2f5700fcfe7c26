"""The orthonormal 2-D DCT-II of image batches: the basis in which the heat blur is diagonal.

Operators that are diagonal in this basis (the DCT Gaussian blur, the identity and their
compositions) report their per-frequency gains through ``LinearCorruption.dct_gains``;
the spectral preconditioning (``softdiff.score.precondition``) works one frequency at a time there.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

__all__ = ["dct_matrix", "dct2", "idct2", "dct_frequencies"]


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


def dct_frequencies(height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(H, W)`` squared spatial frequencies ``w_h^2 + w_w^2`` of the 2-D DCT coefficients."""
    fh = _dct_basis(height, device, dtype)[1]
    fw = _dct_basis(width, device, dtype)[1]
    return fh[:, None] + fw[None, :]


def dct2(x: Tensor) -> Tensor:
    """2-D DCT-II over the last two axes (orthonormal, so ``idct2(dct2(x)) == x``)."""
    dh = _dct_basis(x.shape[-2], x.device, x.dtype)[0]
    dw = _dct_basis(x.shape[-1], x.device, x.dtype)[0]
    return dh @ x @ dw.T


def idct2(c: Tensor) -> Tensor:
    """Inverse of :func:`dct2` (the transpose, since the basis is orthonormal)."""
    dh = _dct_basis(c.shape[-2], c.device, c.dtype)[0]
    dw = _dct_basis(c.shape[-1], c.device, c.dtype)[0]
    return dh.T @ c @ dw
