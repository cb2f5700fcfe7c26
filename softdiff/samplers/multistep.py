"""Multistep solvers for any linear corruption: DPM-Solver++(2M), (3M) and (2M) SDE.

With ``x0_hat`` held at ``D`` over a step, the probability-flow ODE of
``x_t = C_t x0 + s_t eta`` has the exact solution ``x' = r x + (C' - r C) D``
(``r = s'/s``; our Euler step). These solvers feed it an extrapolation of the earlier
``x0_hat`` on the clock ``lambda = -log s_t`` (the derivation is in docs/sampling.md):

* ``dpmpp_2m``: ``D = x0_i + h / (2 h_prev) (x0_i - x0_{i-1})``, k-diffusion's
  ``sample_dpmpp_2m`` when ``C = I``; second order for any operator.
* ``dpmpp_3m``: the quadratic through three ``x0_hat`` integrated against the operator
  (three operator calls per step); third order for any operator. With ``C = I`` it is
  k-diffusion's ``sample_dpmpp_3m_sde(eta=0)`` with the second-derivative term doubled:
  theirs weighs it by half and is second order (measured in tests/test_multistep.py).
* ``dpmpp_2m_sde``: the reverse SDE that the momentum sampler discretises, solved exactly
  for the drift and the noise, with the 2M extrapolation; k-diffusion's
  ``sample_dpmpp_2m_sde(eta=1, solver_type="midpoint")`` when ``C = I``.

Each makes one denoiser call per step. The clock falls back to ``-t`` on steps where
``log s`` does not strictly change (constant or zero noise), and a step that ends at zero
noise from positive noise is taken at first order, so no division by zero can occur.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .core import Carry, Step, noise_ratio, register_sampler, sampler_from_update
from .grids import noise_inverse

__all__ = ["dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "dpmpp_2m_update", "dpmpp_3m_update", "dpmpp_2m_sde_update"]


@dataclass(frozen=True)
class Point:
    """One earlier step: its time, noise level and ``x0_hat``."""

    t: float
    s: float
    x0_hat: Tensor


History = tuple[Point, ...]  # most recent first


def _time(step: Step) -> tuple[float, float]:
    return step.host_times()


def _order(step: Step, order: int) -> int:
    """The order this step can take: limited by the history, and 1 into zero noise (k-diffusion's rule)."""
    history: History = step.state or ()
    if step.s_next == 0 < step.s:
        return 1
    return min(order, 1 + len(history))


def _clock(times: Sequence[float], levels: Sequence[float]) -> tuple[list[float], bool]:
    """``lambda = -log s`` at the points (next, current, earlier...) if it strictly increases toward the
    next point, else ``-t``; and whether lambda was used."""
    if all(s > 0 for s in levels) and all(a < b for a, b in zip(levels, levels[1:], strict=False)):
        return [-math.log(s) for s in levels], True
    return [-t for t in times], False


def _points(step: Step, depth: int) -> tuple[list[float], list[float], list[Tensor]]:
    """Times, noise levels and ``x0_hat`` of (next, current, ``depth - 1`` earlier) points."""
    history: History = step.state or ()
    t, t_next = _time(step)
    earlier = history[: depth - 1]
    times = [t_next, t] + [p.t for p in earlier]
    levels = [step.s_next, step.s] + [p.s for p in earlier]
    return times, levels, [step.x0_hat] + [p.x0_hat for p in earlier]


def _remember(step: Step, keep: int) -> History:
    history: History = step.state or ()
    t, _ = _time(step)
    return (Point(t, step.s, step.x0_hat), *history[: keep - 1])


def _exact_step(step: Step, d: Tensor, ratio: float) -> Tensor:
    """``x' = ratio x + C' d - ratio C d``: the flow (ratio = r) or the SDE drift (ratio = r^2) with x0 = d."""
    process = step.process
    return process.C(d, step.t_next) + ratio * (step.x - process.C(d, step.t))


def _extrapolate_2m(step: Step) -> Tensor:
    """``x0_i + h / (2 h_prev) (x0_i - x0_{i-1})`` (plain ``x0_hat`` without history or into zero noise)."""
    if _order(step, 2) == 1:
        return step.x0_hat
    times, levels, (d0, d1) = _points(step, 2)
    clock, _ = _clock(times, levels)
    h, h_prev = clock[0] - clock[1], clock[1] - clock[2]
    return d0 + (h / (2 * h_prev)) * (d0 - d1)


def dpmpp_2m_update(step: Step) -> Carry:
    """DPM-Solver++(2M): the exact step with the 2M extrapolation of ``x0_hat``."""
    return Carry(_exact_step(step, _extrapolate_2m(step), step.ratio), _remember(step, 1))


def dpmpp_2m_sde_update(step: Step) -> Carry:
    """DPM-Solver++(2M) SDE: ``x' = r^2 x + (C' - r^2 C) D + s' sqrt(1 - r^2) z``.

    With ``D = x0_hat`` this is the momentum sampler's drift exactly; its noise
    ``s' sqrt(1 - r^2)`` is the exact one of that reverse SDE over the step, where momentum's
    Euler–Maruyama noise is ``sqrt(s^2 - s'^2)`` (``1/r`` times larger).
    """
    r2 = step.ratio**2
    x = _exact_step(step, _extrapolate_2m(step), r2)
    spread = step.s_next * max(1.0 - r2, 0.0) ** 0.5
    if spread > 0:
        x = x + spread * step.noise()
    return Carry(x, _remember(step, 1))


# ---- third order ----------------------------------------------------------------------


def _exp_moments(h: float) -> tuple[float, float, float]:
    """``mu_k = int_0^h e^(u - h) u^k du`` for k = 0, 1, 2, without cancellation for small ``h``."""
    if h < 1.0:  # mu_k = k! h^(k+1) sum_n (-h)^n / (n + k + 1)!
        terms = [(-h) ** n for n in range(30)]
        series = [sum(term / math.factorial(n + k + 1) for n, term in enumerate(terms)) for k in range(3)]
        return h * series[0], h**2 * series[1], 2 * h**3 * series[2]
    mu0 = -math.expm1(-h)
    mu1 = h - mu0
    return mu0, mu1, h * h - 2 * mu1


def _divided_differences(clock: list[float], x0: list[Tensor]) -> tuple[Tensor, Tensor | None]:
    """Newton coefficients ``a``, ``b`` of ``P(u) = x0_0 + u a + u (u + h_1) b`` in ``u = clock - clock_0``."""
    a = (x0[0] - x0[1]) / (clock[1] - clock[2])
    if len(x0) == 2:
        return a, None
    a_prev = (x0[1] - x0[2]) / (clock[2] - clock[3])
    return a, (a - a_prev) / (clock[1] - clock[3])


def dpmpp_3m_update(step: Step) -> Carry:
    """DPM-Solver++(3M) for any operator (third order; second and first while history builds up).

    With ``P(u)`` the polynomial through the last ``x0_hat`` on the clock ``u`` (0 now,
    ``h`` at the next time) and ``w(u) = s' / s(u)``, the exact solution of the flow for
    ``x0_hat = P`` is, after integrating by parts,
    ``x' = r x + C' P(h) - r C P(0) - int_0^h w(u) C(u) P'(u) du``. The integrand's
    operator part is interpolated at ``u = 0, h/2, h``; with ``C = I`` that is exact.
    """
    order = _order(step, 3)
    history = _remember(step, 2)
    if order == 1:
        return Carry(_exact_step(step, step.x0_hat, step.ratio), history)
    times, levels, x0 = _points(step, order)
    clock, exponential = _clock(times, levels)
    a, b = _divided_differences(clock, x0)
    h = clock[0] - clock[1]
    h1 = clock[1] - clock[2]

    def slope(u: float) -> Tensor:  # P'(u)
        return a if b is None else a + (2 * u + h1) * b

    p_end = x0[0] + h * a + (0 if b is None else h * (h + h1) * b)  # P(h)
    process, t, t_next = step.process, step.t, step.t_next
    weights = _quadrature(step, h, order, exponential)
    x = process.C(p_end - weights[-1] * slope(h), t_next) - process.C(step.ratio * x0[0] + weights[0] * slope(0.0), t)
    x = x + step.ratio * step.x
    if order == 3:
        t_mid = _midpoint_time(step, exponential)
        x = x - weights[1] * process.C(slope(h / 2), torch.full_like(t, t_mid))
    return Carry(x, history)


def _quadrature(step: Step, h: float, order: int, exponential: bool) -> list[float]:
    """Weights of ``int_0^h w(u) G(u) du`` at nodes ``(0, h)`` or ``(0, h/2, h)``.

    On the lambda clock ``w(u) = e^(u - h)`` exactly and ``G`` is interpolated (product
    integration); on the ``-t`` clock ``w G`` is interpolated (trapezoid, Simpson).
    """
    if exponential:
        mu0, mu1, mu2 = _exp_moments(h)
        if order == 2:
            return [mu0 - mu1 / h, mu1 / h]
        return [
            (2 * mu2 - 3 * h * mu1 + h * h * mu0) / (h * h),
            4 * (h * mu1 - mu2) / (h * h),
            (2 * mu2 - h * mu1) / (h * h),
        ]
    t, t_next = _time(step)
    w_start = noise_ratio(step.s, step.s_next)
    if order == 2:
        return [h / 2 * w_start, h / 2]
    s_mid = float(step.process.s(torch.tensor(0.5 * (t + t_next), dtype=torch.float64)))
    return [h / 6 * w_start, 4 * h / 6 * noise_ratio(s_mid, step.s_next), h / 6]


def _midpoint_time(step: Step, exponential: bool) -> float:
    """The time halfway along the clock: ``s = sqrt(s s')`` on the lambda clock, ``(t + t')/2`` on ``-t``."""
    t, t_next = _time(step)
    if not exponential:
        return 0.5 * (t + t_next)
    level = math.sqrt(step.s * step.s_next)
    return float(noise_inverse(step.process, [level], lo=t_next, hi=t)[0])


dpmpp_2m = sampler_from_update(
    dpmpp_2m_update, "dpmpp_2m", "DPM-Solver++(2M) for any linear corruption. ``len(ts) - 1`` denoiser calls."
)
dpmpp_3m = sampler_from_update(
    dpmpp_3m_update, "dpmpp_3m", "DPM-Solver++(3M) for any linear corruption. ``len(ts) - 1`` denoiser calls."
)
dpmpp_2m_sde = sampler_from_update(
    dpmpp_2m_sde_update,
    "dpmpp_2m_sde",
    "DPM-Solver++(2M) SDE (momentum's reverse SDE, solved exactly per step). ``len(ts) - 1`` denoiser calls.",
)

register_sampler("dpmpp_2m", dpmpp_2m)
register_sampler("dpmpp_3m", dpmpp_3m)
register_sampler("dpmpp_2m_sde", dpmpp_2m_sde)
