"""Diagonal forms: ``C_t = U^T diag(g(t)) U`` for a fixed orthonormal basis ``U`` (time-free).

One declaration of "diagonal in a known basis", on the operator itself (deepinv's
``DecomposablePhysics`` keeps ``U diag V^T`` the same way): an operator's
``diagonal_form()`` returns a :class:`DiagonalForm` or None. Everything that needs the
property derives from it: ``dct_gains`` (the spectral preconditioning), :func:`spectrum`
(the ancestral sampler, DDRM, the auto grid) and ``Compose``, which multiplies the gains of
two parts diagonal in the same basis.

Bases are named so that compositions can be checked: ``"pixels"`` (masks), ``"dct"`` (the
DCT-II heat blur), ``"any"`` (a multiple of the identity, diagonal in every basis; used in
pixels on its own) and None (a basis of its own, which composes only with ``"any"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from .dct import dct2, idct2

__all__ = [
    "DiagonalForm",
    "Spectrum",
    "PIXELS",
    "DCT",
    "ANY",
    "pixel_form",
    "dct_form",
    "scalar_form",
    "compose_forms",
    "register_spectrum",
    "registered_form",
]

Map = Callable[[Tensor], Tensor]
Gains = Callable[[Tensor, tuple[int, ...]], Tensor]  # (t (B,), shape (B, C, H, W)) -> gains of exactly that shape

PIXELS, DCT, ANY = "pixels", "dct", "any"


def _pixels(x: Tensor) -> Tensor:
    return x


@dataclass(frozen=True)
class DiagonalForm:
    """``to_basis`` (orthonormal, time-free), its inverse, the gains ``g(t)`` per coefficient, the basis's name.

    ``gains(t, shape)`` takes the operator's own times ``(B,)`` and the batch shape and returns
    a tensor of that shape (an expanded view is fine) in the dtype and on the device of ``t``.
    """

    to_basis: Map
    from_basis: Map
    gains: Gains
    basis: str | None = None  # PIXELS, DCT, ANY, or None: a basis of its own (composes only with ANY)


Spectrum = DiagonalForm  # the name before issue 20; kept so that user code importing it keeps working


def pixel_form(gains: Gains) -> DiagonalForm:
    """A diagonal (per-pixel) operator: the basis is the pixels themselves."""
    return DiagonalForm(_pixels, _pixels, gains, PIXELS)


def dct_form(gains: Gains) -> DiagonalForm:
    """An operator diagonal in the orthonormal 2-D DCT-II basis (the heat blur)."""
    return DiagonalForm(dct2, idct2, gains, DCT)


def scalar_form(gains: Gains) -> DiagonalForm:
    """``C_t = g(t) I``: diagonal in every basis (the gains must not vary across coefficients)."""
    return DiagonalForm(_pixels, _pixels, gains, ANY)


def compose_forms(outer: DiagonalForm | None, inner: DiagonalForm | None) -> DiagonalForm | None:
    """The form of ``outer @ inner``: the product of the gains when both share a basis (or one is ANY), else None."""
    if outer is None or inner is None:
        return None
    if outer.basis == ANY:
        outer, inner = inner, outer  # the result lives in the basis of the part that has one
    if inner.basis != ANY and (outer.basis is None or outer.basis != inner.basis):
        return None

    def gains(t: Tensor, shape: tuple[int, ...]) -> Tensor:
        return outer.gains(t, shape) * inner.gains(t, shape)

    return DiagonalForm(outer.to_basis, outer.from_basis, gains, outer.basis)


_LEGACY: dict[type, Callable[[object], DiagonalForm | None]] = {}


def register_spectrum(kind: type, build: Callable[[object], DiagonalForm | None]) -> None:
    """Deprecated (kept for code written before issue 20): declare how operators of type ``kind`` diagonalise.

    Define ``diagonal_form()`` on the class instead: it is inherited by subclasses and
    composed by ``Compose``. A form registered here is used for ``kind`` and its subclasses
    when they define none, in a basis of its own unless the form names one.
    """
    _LEGACY[kind] = build


def registered_form(op: object) -> DiagonalForm | None:
    """The form :func:`register_spectrum` declared for ``op``'s type (or the nearest base), else None."""
    for kind in type(op).__mro__:
        if kind in _LEGACY:
            return _LEGACY[kind](op)
    return None
