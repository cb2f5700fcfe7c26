"""The diagonal form of an operator, for samplers and solvers: ``C_t = U^T diag(g(t)) U``.

Then the process is a Gaussian diffusion per coefficient, ``u_k(t) = g_k(t) u_k(0) + s_t eta_k``
(Hoogeboom & Salimans, *Blurring Diffusion Models*, 2022), and the exact reverse transitions
are known in closed form: what the ancestral sampler (:mod:`softdiff.samplers.ancestral`)
needs. The operator declares the form itself (``LinearCorruption.diagonal_form``, composed
by ``Compose`` and inherited by subclasses); :func:`spectrum` reads it.
"""

from __future__ import annotations

from .base import LinearCorruption
from .diagonal import DiagonalForm, Spectrum, register_spectrum

__all__ = ["Spectrum", "DiagonalForm", "spectrum", "register_spectrum"]


def spectrum(op: LinearCorruption) -> DiagonalForm | None:
    """The diagonal form of ``op`` (``op.diagonal_form()``), or None when it declares none."""
    return op.diagonal_form()
