"""The samplers of Soft Diffusion (paper's Algorithms 1 and 2, and Euler/Heun) as plain functions over one driver loop.

Every sampler has the signature ``sampler(denoiser, process, x, ts, *, generator=None,
callback=None, cond=None) -> Tensor``: ``x`` is a batch at time ``ts[0]``, ``ts`` a strictly
decreasing grid in [0, 1], and the result the image at ``ts[-1]``. A sampler is one
*update rule* (how ``x_t`` becomes ``x_t'`` given ``x0_hat``) run by :func:`run`, which
owns everything the samplers share: grid checks, noise levels, the denoiser call, the
callback and the last step, which adds no noise and returns ``C_{ts[-1]} x0_hat``.

A rule that needs memory (a multistep solver's earlier ``x0_hat``) returns
``Carry(x_next, state)``; the driver hands ``state`` back as ``Step.state`` at the next
step (``None`` at the first). The state lives in the driver's loop only, so samplers stay
pure functions with no hidden globals.

``cond`` (a label tensor or a small dict, :mod:`softdiff.conditioning`) is passed untouched
to every denoiser call, as k-diffusion's ``extra_args``: the driver's and a rule's own
(:meth:`Step.denoise`). Without it the denoiser is called as ``denoiser(x, t)``.

Notation per step ``t -> t'``: ``x0_hat = D(x_t, t)``, ``y = C_t x0_hat``,
``y' = C_t' x0_hat``, ``z ~ N(0, I)``, ``r = s_t' / s_t`` (taken as 1 when ``s_t = 0``, so
that with no noise at all Euler and Momentum both reduce to Cold Diffusion's update).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from ..conditioning import Cond, DenoiserFn, call_denoiser
from ..corrupt import CorruptionProcess
from ..corrupt.times import deferred_time_checks
from ..registry import Registry
from .grids import check_grid
from .noise import NoiseSource, randn

__all__ = [
    "DenoiserFn",
    "Sampler",
    "Step",
    "Carry",
    "run",
    "naive",
    "momentum",
    "euler",
    "heun",
    "naive_update",
    "momentum_update",
    "euler_update",
    "heun_update",
    "get",
    "names",
    "nfe",
    "register_sampler",
    "sampler_from_update",
]

Callback = Callable[[dict[str, Any]], None]


class Sampler(Protocol):
    def __call__(
        self,
        denoiser: DenoiserFn,
        process: CorruptionProcess,
        x: Tensor,
        ts: Tensor,
        *,
        generator: NoiseSource = None,
        callback: Callback | None = None,
        cond: Cond = None,
    ) -> Tensor: ...


@dataclass(frozen=True)
class Step:
    """What an update rule sees for one step ``t -> t_next`` (times are ``(B,)`` tensors)."""

    denoiser: DenoiserFn
    process: CorruptionProcess
    x: Tensor
    x0_hat: Tensor
    t: Tensor
    t_next: Tensor
    s: float
    s_next: float
    generator: NoiseSource
    state: Any = None
    cond: Cond = None
    time: float | None = None  # t and t_next as floats: the driver passes its grid's (no device read)
    time_next: float | None = None

    def host_times(self) -> tuple[float, float]:
        """``(t, t_next)`` as floats, from the grid when the driver gave them, else read from ``t``."""
        if self.time is not None and self.time_next is not None:
            return self.time, self.time_next
        return float(self.t[0]), float(self.t_next[0])

    def denoise(self, x: Tensor, t: Tensor) -> Tensor:
        """The denoiser at ``(x, t)`` with this run's ``cond``: how a rule makes a call of its own (Heun's)."""
        return call_denoiser(self.denoiser, x, t, self.cond)

    @property
    def ratio(self) -> float:
        """``s_t' / s_t``, or 1 when there is no noise to scale (``s_t = 0``)."""
        return noise_ratio(self.s, self.s_next)

    def noise(self) -> Tensor:
        """A standard normal draw shaped like ``x``."""
        return randn(self.generator, self.x.shape, device=self.x.device, dtype=self.x.dtype)


@dataclass(frozen=True)
class Carry:
    """What a rule with memory returns: the next ``x`` and the state it wants at the next step."""

    x: Tensor
    state: Any


Update = Callable[[Step], Tensor | Carry]


def noise_ratio(s: float, s_next: float) -> float:
    return s_next / s if s > 0 else 1.0


def noise_levels(process: CorruptionProcess, ts: Tensor) -> list[float]:
    """``s_t`` at every grid time (float64), checked to be finite, >= 0 and not growing as t falls."""
    levels = torch.as_tensor(process.s(ts), dtype=torch.float64).reshape(-1)
    if levels.shape != ts.shape or not bool(torch.isfinite(levels).all()) or bool((levels < 0).any()):
        raise ValueError(f"the noise schedule must give one finite s_t >= 0 per time, got {levels.tolist()}")
    if bool((levels.diff() > 1e-12 * levels[:-1].abs().clamp_min(1.0)).any()):
        raise ValueError("the noise schedule must not grow as t decreases (s_t must be non-decreasing in t)")
    return levels.tolist()


def run(
    update: Update,
    denoiser: DenoiserFn,
    process: CorruptionProcess,
    x: Tensor,
    ts: Tensor,
    *,
    generator: NoiseSource = None,
    callback: Callback | None = None,
    cond: Cond = None,
) -> Tensor:
    """Drive ``update`` over the grid ``ts``: the loop every sampler shares.

    Runs under ``torch.no_grad`` (memory stays O(batch) whatever the number of steps).
    ``callback`` receives ``{"i", "t", "x", "x0_hat"}`` once per step, before the update.
    A rule returning :class:`Carry` gets its ``state`` back at the next step. ``cond`` goes,
    untouched, to every denoiser call (rows aligned with ``x``).
    """
    ts = check_grid(ts)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
    levels = noise_levels(process, ts)
    host = ts.to(dtype=x.dtype)  # the times as the steps see them, also as floats for the rules
    times = host.to(device=x.device)
    batch, last = x.shape[0], len(ts) - 2
    state: Any = None
    # the operators' [0, 1] checks of the step times, read once at the end: a GPU never waits for them
    with torch.no_grad(), deferred_time_checks() as checks:
        for i in range(last + 1):
            t, t_next = times[i].repeat(batch), times[i + 1].repeat(batch)
            x0_hat = call_denoiser(denoiser, x, t, cond)
            if callback is not None:
                callback({"i": i, "t": float(ts[i]), "x": x, "x0_hat": x0_hat})
            if i == last:
                x = process.C(x0_hat, t_next)
                break
            s, s_next, host_t, host_next = levels[i], levels[i + 1], float(host[i]), float(host[i + 1])
            step = Step(denoiser, process, x, x0_hat, t, t_next, s, s_next, generator, state, cond, host_t, host_next)
            out = update(step)
            x, state = (out.x, out.state) if isinstance(out, Carry) else (out, None)
    checks.settle("the sampler")
    return x


# ---- update rules -------------------------------------------------------------------


def naive_update(step: Step) -> Tensor:
    """Paper's Algorithm 1: re-corrupt the estimate, ``x' = y' + s' z``."""
    return step.process.C(step.x0_hat, step.t_next) + step.s_next * step.noise()


def momentum_update(step: Step) -> Tensor:
    """Paper's Algorithm 2: a reverse-SDE step in noise level, then a deblurring step.

    ``u = x + (1 - r^2) (y - x) + sqrt(s^2 - s'^2) z`` and ``x' = u + (y' - y)``.
    """
    y, y_next = step.process.C(step.x0_hat, step.t), step.process.C(step.x0_hat, step.t_next)
    spread = max(step.s**2 - step.s_next**2, 0.0) ** 0.5
    u = step.x + (1 - step.ratio**2) * (y - step.x) + spread * step.noise()
    return u + (y_next - y)


def euler_update(step: Step) -> Tensor:
    """Probability-flow (DDIM-like) step ``x' = y' + r (x - y)``: EDM's Euler step when ``C = I``."""
    y, y_next = step.process.C(step.x0_hat, step.t), step.process.C(step.x0_hat, step.t_next)
    return y_next + step.ratio * (step.x - y)


def heun_update(step: Step) -> Tensor:
    """Heun (trapezoid) correction of the Euler step; one more denoiser call, at ``t'``.

    The flow is ``dx/dt = (dC_t/dt) x0_hat + (ds_t/dt) eps_hat`` with
    ``eps_hat = (x - C_t x0_hat) / s_t``; Euler freezes ``(x0_hat, eps_hat)`` over the
    step, Heun uses their average over both ends:
    ``x' = x + (C_t' - C_t) x0_bar + (s' - s) eps_bar``. With ``C = I`` this is EDM's Heun step.
    """
    process, x, x0_1 = step.process, step.x, step.x0_hat
    x_pred = euler_update(step)
    x0_2 = step.denoise(x_pred, step.t_next)
    # (s' - s) eps_1 = (r - 1)(x - C_t x0_1) and (s' - s) eps_2 = (1 - 1/r)(x_pred - C_t' x0_2),
    # written with ratios so that a noise-free process (s = 0) stays finite.
    delta_1 = (step.ratio - 1) * (x - process.C(x0_1, step.t))
    delta_2 = (1 - noise_ratio(step.s_next, step.s)) * (x_pred - process.C(x0_2, step.t_next))
    x0_bar = 0.5 * (x0_1 + x0_2)
    return x + process.C(x0_bar, step.t_next) - process.C(x0_bar, step.t) + 0.5 * (delta_1 + delta_2)


# ---- the samplers ---------------------------------------------------------------------


def sampler_from_update(update: Update, name: str, doc: str) -> Sampler:
    """A plain sampler function ``(denoiser, process, x, ts, *, generator, callback, cond)`` running ``update``."""

    def sampler(
        denoiser: DenoiserFn,
        process: CorruptionProcess,
        x: Tensor,
        ts: Tensor,
        *,
        generator: NoiseSource = None,
        callback: Callback | None = None,
        cond: Cond = None,
    ) -> Tensor:
        return run(update, denoiser, process, x, ts, generator=generator, callback=callback, cond=cond)

    sampler.__name__ = sampler.__qualname__ = name
    sampler.__doc__ = doc
    return sampler


naive = sampler_from_update(
    naive_update, "naive", "Naive sampler (Algorithm 1). Known to lose diversity. ``len(ts) - 1`` denoiser calls."
)
momentum = sampler_from_update(
    momentum_update, "momentum", "Momentum sampler (Algorithm 2), the paper's default. ``len(ts) - 1`` denoiser calls."
)
euler = sampler_from_update(
    euler_update, "euler", "Deterministic probability-flow Euler sampler. ``len(ts) - 1`` denoiser calls."
)
heun = sampler_from_update(
    heun_update,
    "heun",
    "Second-order Heun sampler: 2 calls per step except the last, ``2 (len(ts) - 1) - 1`` in all.",
)


# ---- registry -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    sampler: Sampler
    nfe: Callable[[int], int]


SAMPLERS: Registry[_Entry] = Registry("sampler")
SAMPLERS.register("momentum", _Entry(momentum, lambda steps: steps))
SAMPLERS.register("naive", _Entry(naive, lambda steps: steps))
SAMPLERS.register("euler", _Entry(euler, lambda steps: steps))
SAMPLERS.register("heun", _Entry(heun, lambda steps: 2 * steps - 1))


def register_sampler(
    name: str, sampler: Sampler, nfe: Callable[[int], int] = lambda steps: steps, *, replace: bool = False
) -> None:
    """Make ``sampler`` available by name; ``nfe(steps)`` is its denoiser-call count.

    A taken name is an error unless ``replace=True``.
    """
    SAMPLERS.register(name, _Entry(sampler, nfe), replace=replace)


def names() -> list[str]:
    """The registered sampler names."""
    return SAMPLERS.names()


def _entry(name: str) -> _Entry:
    return SAMPLERS.get(name)


def get(name: str) -> Sampler:
    """The sampler registered as ``name`` (ValueError listing the names otherwise)."""
    return _entry(name).sampler


def nfe(name: str, steps: int) -> int:
    """Denoiser calls the sampler ``name`` makes over a grid of ``steps`` steps (``len(ts) - 1``)."""
    return _entry(name).nfe(steps)
