"""Operators that are diagonal in a fixed orthonormal basis: ``C_t = U^T diag(g(t)) U``.

Then the process is a Gaussian diffusion per coefficient, ``u_k(t) = g_k(t) u_k(0) + s_t eta_k``
(Hoogeboom & Salimans, *Blurring Diffusion Models*, 2022), and the exact reverse transitions
are known in closed form: what the ancestral sampler (:mod:`softdiff.samplers.ancestral`)
needs. The DCT heat blur (DCT-II basis), masks (pixel basis) and the identity have one;
:func:`register_spectrum` adds another operator type.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import LinearCorruption
from .blur import GaussianBlur, dct_matrix
from .identity import Identity
from .mask import Mask

__all__ = ["Spectrum", "spectrum", "register_spectrum"]


@dataclass(frozen=True)
class Spectrum:
    """``to_basis`` (orthonormal, time-free), its inverse, and the gains ``g(t)`` per coefficient."""

    to_basis: Callable[[Tensor], Tensor]
    from_basis: Callable[[Tensor], Tensor]
    gains: Callable[[Tensor, tuple[int, ...]], Tensor]  # (t (B,), (B, C, H, W)) -> gains (B, C, H, W)


_REGISTRY: dict[type, Callable[[LinearCorruption], Spectrum | None]] = {}


def register_spectrum(kind: type, build: Callable[[LinearCorruption], Spectrum | None]) -> None:
    """Declare how operators of type ``kind`` diagonalise (``build`` may return None for some instances)."""
    _REGISTRY[kind] = build


def spectrum(op: LinearCorruption) -> Spectrum | None:
    """The diagonal form of ``op``, or None when it has none registered."""
    build = _REGISTRY.get(type(op))
    return build(op) if build is not None else None


def _pixels(x: Tensor) -> Tensor:
    return x


def _identity(op: LinearCorruption) -> Spectrum:
    return Spectrum(_pixels, _pixels, lambda t, shape: torch.ones(shape, dtype=t.dtype, device=t.device))


def _mask(op: LinearCorruption) -> Spectrum:
    assert isinstance(op, Mask)

    def gains(t: Tensor, shape: tuple[int, ...]) -> Tensor:
        return op.weights(t, shape[-2], shape[-1]).expand(shape)

    return Spectrum(_pixels, _pixels, gains)


def _dct2(x: Tensor, inverse: bool = False) -> Tensor:
    h, w = x.shape[-2:]
    dh, dw = dct_matrix(h, x.device, x.dtype), dct_matrix(w, x.device, x.dtype)
    if inverse:
        return dh.T @ x @ dw
    return dh @ x @ dw.T


def _blur(op: LinearCorruption) -> Spectrum | None:
    assert isinstance(op, GaussianBlur)
    if op.backend != "dct":
        return None  # the sampled-kernel blur is not diagonal in a known basis

    def gains(t: Tensor, shape: tuple[int, ...]) -> Tensor:
        h, w = shape[-2:]
        fh = (math.pi * torch.arange(h, dtype=t.dtype, device=t.device) / h) ** 2
        fw = (math.pi * torch.arange(w, dtype=t.dtype, device=t.device) / w) ** 2
        sigma2 = op.sigma(t)[:, None, None, None] ** 2
        return torch.exp(-0.5 * sigma2 * (fh[:, None] + fw[None, :])).expand(shape)

    return Spectrum(_dct2, lambda c: _dct2(c, inverse=True), gains)


register_spectrum(Identity, _identity)
register_spectrum(Mask, _mask)
register_spectrum(GaussianBlur, _blur)
