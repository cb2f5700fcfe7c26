"""The singular value decomposition ``A = U diag(s) V^T`` of a degradation, as DDRM needs it.

DDRM (Kawar et al. 2022) works one singular coordinate at a time, so it needs ``V^T x``,
``V c``, ``U^T y`` and the singular values. Three ways to get them, cheapest first:

* a **diagonal form** the operator already declares (:func:`softdiff.corrupt.spectrum`): the
  DCT heat blur (DCT-II basis, its gains), masks and box inpainting (pixel basis, 0/1 weights);
* an **orthogonal projection** ``P`` (``is_projection``: ``pixelate`` at a whole factor, ``P = P^T = P^2``), written
  as the tight frame ``x -> (P x, x - P x)`` with singular values ``(1, 0)``. A frame is not a
  basis, but every DDRM operation is a per-coordinate function of the singular value, and
  ``from_coeffs(f(s) * to_coeffs(x)) = f(1) P x + f(0) (I - P) x`` is exactly ``V f(S) V^T x``;
  white noise maps to white noise the same way;
* a **dense SVD** (float64) of the ``D x D`` matrix for small images (``D <= DENSE_LIMIT``).

Anything else has no SVD here: :func:`singular_form` returns None and DDRM refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..corrupt import spectrum
from .operators import Degradation

__all__ = ["SingularForm", "singular_form", "DENSE_LIMIT"]

DENSE_LIMIT = 4096  # a dense SVD of up to 4096 x 4096 (a 64 x 64 grey or 3 x 32 x 32 image) takes seconds
Map = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class SingularForm:
    """``to_coeffs = V^T``, ``from_coeffs = V``, ``observe = U^T`` and the singular values ``values``.

    ``values`` broadcasts against the coefficients (it has their shape without the batch).
    """

    to_coeffs: Map
    from_coeffs: Map
    observe: Map
    values: Tensor
    kind: str

    def pinv_coeffs(self, y: Tensor) -> Tensor:
        """``Sigma^+ U^T y``: the coordinates of ``A^+ y`` (zero where a singular value is)."""
        s = self.values.to(y)
        seen = s > 0
        return torch.where(seen, self.observe(y) / torch.where(seen, s, torch.ones_like(s)), 0.0)


def _diagonal(A: Degradation, shape: tuple[int, int, int]) -> SingularForm | None:
    form = spectrum(A.op)
    if form is None:
        return None
    probe = torch.zeros(1, *shape, dtype=torch.float64)
    gains = form.gains(torch.full((1,), A.t, dtype=torch.float64), tuple(probe.shape))[0]
    if bool((gains < 0).any()):  # a symmetric operator with negative gains: fold the sign into U
        return None
    return SingularForm(form.to_basis, form.from_basis, form.to_basis, gains.clone(), "diagonal")


def _projection(A: Degradation, shape: tuple[int, int, int]) -> SingularForm | None:
    if not A.op.is_projection(A.t):
        return None  # e.g. a pixelation mixing two block sizes

    def to_coeffs(x: Tensor) -> Tensor:
        px = A(x)
        return torch.stack([px, x - px], dim=1)

    def from_coeffs(c: Tensor) -> Tensor:
        return A(c[:, 0]) + (c[:, 1] - A(c[:, 1]))

    values = torch.stack([torch.ones(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)])
    return SingularForm(to_coeffs, from_coeffs, to_coeffs, values, "projection")


def _dense(A: Degradation, shape: tuple[int, int, int]) -> SingularForm | None:
    d = math.prod(shape)
    if d > DENSE_LIMIT:
        return None
    u, s, vh = torch.linalg.svd(A.matrix(shape))
    s = torch.where(s > 1e-10 * float(s.max().clamp_min(1e-300)), s, torch.zeros_like(s))

    def to_coeffs(x: Tensor) -> Tensor:
        return x.flatten(1) @ vh.T.to(x)

    def from_coeffs(c: Tensor) -> Tensor:
        return (c @ vh.to(c)).reshape(-1, *shape)

    def observe(y: Tensor) -> Tensor:
        return y.flatten(1) @ u.to(y)

    return SingularForm(to_coeffs, from_coeffs, observe, s, "dense")


def singular_form(A: Degradation, shape: tuple[int, int, int]) -> SingularForm | None:
    """The SVD of ``A`` on images of ``shape``: diagonal, projection or dense; None when none applies."""
    for build in (_diagonal, _projection, _dense):
        form = build(A, shape)
        if form is not None:
            return form
    return None
