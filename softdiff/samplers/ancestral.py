"""Ancestral sampler: the exact reverse transition of a diagonal process, with ``x_0`` estimated.

For ``C_t = U^T diag(g(t)) U`` (the operator's ``diagonal_form()``, :mod:`softdiff.corrupt.diagonal`)
each coefficient follows ``u(t) = g(t) u_0 + s_t eta``. It is the marginal of a Markov chain: for ``t' < t``,
``u(t) = m u(t') + xi`` with ``m = g(t) / g(t')`` and ``xi ~ N(0, q)``, ``q = s_t^2 - m^2 s_t'^2``
(``q >= 0`` whenever gains fall and noise grows with t). The step draws ``u(t')`` from the
Gaussian ``p(u(t') | u(t), u_0)`` with ``u_0`` replaced by the denoiser's estimate:

    precision = 1 / s_t'^2 + m^2 / q,   mean = (g(t') u0_hat / s_t'^2 + m u(t) / q) / precision

(DDPM's ancestral step; Hoogeboom & Salimans' sampler for blurring diffusion). Unlike the
paper's samplers, which only reproduce the marginals ``q_t``, its chain is the time reversal
of one Markov forward process, so started at a fixed ``x_tau`` it samples ``p(x_0 | x_tau)``
as steps shrink: what restoration by level entry needs. With ``C = I`` it is the VE ancestral
step ``x' = x0_hat + (s'^2 / s^2)(x - x0_hat) + (s' / s) sqrt(s^2 - s'^2) z``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .core import Step, register_sampler, sampler_from_update

__all__ = ["ancestral", "ancestral_update"]


def ancestral_update(step: Step) -> Tensor:
    """One exact-bridge step per coefficient of the operator's diagonal basis."""
    process = step.process
    form = process.operator.diagonal_form()
    if form is None:
        raise ValueError(
            f"the ancestral sampler needs an operator that is diagonal in a known basis (identity, mask, DCT blur, "
            f"their compositions in one basis), not {type(process.operator).__name__}; use momentum"
        )
    x = step.x
    shape = tuple(x.shape)
    g = form.gains(process.time(step.t, x), shape)
    g_next = form.gains(process.time(step.t_next, x), shape)
    s2, s2_next = step.s**2, step.s_next**2
    m = torch.where(g_next > 0, g / torch.where(g_next > 0, g_next, torch.ones_like(g_next)), torch.zeros_like(g))
    q = (s2 - m**2 * s2_next).clamp_min(1e-12 * max(s2, 1e-30))
    if s2_next == 0:  # the last noise level is zero: the bridge ends at the estimate
        return process.C(step.x0_hat, step.t_next)
    precision = 1 / s2_next + m**2 / q
    u, u0 = form.to_basis(x), form.to_basis(step.x0_hat)
    mean = (g_next * u0 / s2_next + m * u / q) / precision
    return form.from_basis(mean + precision.rsqrt() * form.to_basis(step.noise()))


ancestral = sampler_from_update(
    ancestral_update,
    "ancestral",
    "Ancestral (exact reverse-transition) sampler for diagonal processes. ``len(ts) - 1`` denoiser calls.",
)
register_sampler("ancestral", ancestral)
