"""Orthonormal projections that keep level selection cheap on large images (low DCT frequencies).

The distances between projected Gaussians ``N(P^T m, P^T S P)`` are exact for the
projected data and a lower bound of the full ones (a projection is 1-Lipschitz).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from ..corrupt.blur import dct_matrix

__all__ = ["Projection", "DCTProjection", "MatrixProjection", "make_projection", "dct_rotation"]


class Projection(Protocol):
    """An orthonormal linear map from images ``(B, C, H, W)`` to coordinates ``(B, dim)``."""

    dim: int

    def __call__(self, x: Tensor) -> Tensor: ...


class DCTProjection:
    """The ``r x r`` lowest-frequency DCT-II coefficients of every channel (orthonormal, separable)."""

    def __init__(self, r: int, shape: tuple[int, int, int], full: bool = False) -> None:
        c, h, w = shape
        if not full and not 1 <= r <= min(h, w):
            raise ValueError(f"projection keeps r x r DCT frequencies per channel; need 1 <= r <= {min(h, w)}, got {r}")
        self._dh = dct_matrix(h, dtype=torch.float64)[:r]  # full=True: every frequency (r >= H, W)
        self._dw = dct_matrix(w, dtype=torch.float64)[:r]
        self.r, self.dim = r, c * self._dh.shape[0] * self._dw.shape[0]

    def __call__(self, x: Tensor) -> Tensor:
        return (self._dh @ x @ self._dw.T).flatten(1)

    def __repr__(self) -> str:
        return f"DCTProjection({self.r}x{self.r} per channel, dim={self.dim})"


class MatrixProjection:
    """Projection onto the span of a ``(D, d)`` basis with orthonormal columns."""

    def __init__(self, basis: Tensor, shape: tuple[int, int, int]) -> None:
        n = math.prod(shape)
        if basis.ndim != 2 or basis.shape[0] != n or basis.shape[1] < 1:
            raise ValueError(
                f"a projection basis must have shape ({n}, d) for images of shape {shape}, got {tuple(basis.shape)}"
            )
        basis = basis.to(torch.float64)
        gram = basis.T @ basis
        if not torch.allclose(gram, torch.eye(gram.shape[0], dtype=torch.float64), atol=1e-6):
            raise ValueError(
                "projection basis columns must be orthonormal; orthonormalise with torch.linalg.qr(basis).Q"
            )
        self.basis, self.dim = basis, basis.shape[1]

    def __call__(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.basis

    def __repr__(self) -> str:
        return f"MatrixProjection(dim={self.dim})"


def _identity_projection(x: Tensor) -> Tensor:
    return x.flatten(1)


def make_projection(projection: int | Tensor | None, shape: tuple[int, int, int]) -> Callable[[Tensor], Tensor]:
    """None: the pixels themselves; an int ``r``: :class:`DCTProjection`; a ``(D, d)`` tensor: its span."""
    if projection is None:
        return _identity_projection
    if isinstance(projection, Tensor):
        return MatrixProjection(projection, shape)
    if isinstance(projection, bool) or not isinstance(projection, int):
        raise ValueError(
            f"projection must be None, an int (DCT frequencies per axis) or a (D, d) tensor, got {projection!r}"
        )
    return DCTProjection(projection, shape)


def dct_rotation(shape: tuple[int, int, int]) -> Tensor:
    """Dense orthonormal 2-D DCT-II of every channel, as a ``(D, D)`` matrix acting on flat images."""
    c, h, w = shape
    n = c * h * w
    eye = torch.eye(n, dtype=torch.float64).reshape(n, c, h, w)
    return DCTProjection(max(h, w), shape, full=True)(eye).T.contiguous()
