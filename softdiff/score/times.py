"""Training-time laws ``t ~ p(t)``: one registry whose entries own their settings (``Params``).

A t-sampler is called as ``sampler(n, generator, device) -> (n,)``. A registered law
(:class:`TimeLaw`) builds one from its validated ``Params`` and the run's
:class:`TimeContext` (the process, and the number of selected levels, if any), so the
config names a law and its settings and a plugin's law is configured like a built-in
(:func:`register_t_sampler`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from ..corrupt import CorruptionProcess
from ..registry import NoParams, Registry

__all__ = [
    "TSampler",
    "TimeContext",
    "TimeLaw",
    "T_SAMPLERS",
    "register_t_sampler",
    "uniform_t",
    "LevelTimes",
    "LogitNormalTimes",
    "LogNormalNoise",
]

TSampler = Callable[[int, "torch.Generator | None", torch.device], Tensor]


def uniform_t(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``t ~ U[0, 1]``, ``n`` of them."""
    where = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=where).to(device)


class LevelTimes:
    """``t`` uniform over the ``K`` levels ``k / (K - 1)`` of a level table (matched to a schedule)."""

    def __init__(self, levels: int) -> None:
        if levels < 2:
            raise ValueError(f"a level t-sampler needs at least 2 levels, got {levels}")
        self.levels = int(levels)

    def __call__(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        where = generator.device if generator is not None else device
        k = torch.randint(self.levels, (n,), generator=generator, device=where)
        return (k.float() / (self.levels - 1)).to(device)

    def __repr__(self) -> str:
        return f"LevelTimes({self.levels})"


class LogitNormalTimes:
    """``t = sigmoid(mean + std * z)``: more training where ``t`` is mid-way (a logit-normal law)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"a logit-normal t-sampler needs a finite mean and std > 0, got {mean}, {std}")
        self.mean, self.std = float(mean), float(std)

    def __call__(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        where = generator.device if generator is not None else device
        z = torch.randn(n, generator=generator, device=where)
        return torch.sigmoid(self.mean + self.std * z).to(device)

    def __repr__(self) -> str:
        return f"LogitNormalTimes({self.mean}, {self.std})"


class LogNormalNoise:
    """EDM's training noise law ``ln s ~ N(p_mean, p_std^2)``, mapped to ``t`` through ``s_t``.

    ``s_t`` must grow strictly with ``t`` (as vanilla diffusion's does); draws outside
    ``[s_0, s_1]`` land on the nearest end. For processes whose noise barely changes
    (blur with ``s`` from 0.01 to 0.1) this law says little: use ``LogitNormalTimes``.
    """

    def __init__(self, process: CorruptionProcess, p_mean: float = -1.2, p_std: float = 1.2, grid: int = 4097) -> None:
        if not (math.isfinite(p_mean) and math.isfinite(p_std) and p_std > 0):
            raise ValueError(f"a log-normal noise sampler needs a finite p_mean and p_std > 0, got {p_mean}, {p_std}")
        ts = torch.linspace(0, 1, grid, dtype=torch.float64)
        log_s = torch.as_tensor(process.s(ts), dtype=torch.float64).log()
        if not bool(torch.isfinite(log_s).all()) or bool((log_s.diff() <= 0).any()):
            raise ValueError("t_sampler 'lognormal' needs a noise schedule s_t > 0 that grows strictly with t")
        self.p_mean, self.p_std = float(p_mean), float(p_std)
        self._ts, self._log_s = ts, log_s

    def __call__(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        where = generator.device if generator is not None else device
        log_s = (self.p_mean + self.p_std * torch.randn(n, generator=generator, device=where)).cpu().double()
        log_s = log_s.clamp(float(self._log_s[0]), float(self._log_s[-1]))
        hi = torch.searchsorted(self._log_s, log_s).clamp(1, len(self._ts) - 1)
        lo = hi - 1
        frac = (log_s - self._log_s[lo]) / (self._log_s[hi] - self._log_s[lo])
        t = self._ts[lo] + frac * (self._ts[hi] - self._ts[lo])
        return t.clamp(0, 1).to(device=device, dtype=torch.get_default_dtype())

    def __repr__(self) -> str:
        return f"LogNormalNoise({self.p_mean}, {self.p_std})"


@dataclass(frozen=True)
class TimeContext:
    """What a law may depend on: the run's process and its number of selected levels (None: none)."""

    process: CorruptionProcess
    levels: int | None = None


@dataclass(frozen=True)
class TimeLaw:
    """A registered t-sampler: ``build(params, context)`` with ``params`` an instance of ``Params``."""

    description: str
    build: Callable[[BaseModel, TimeContext], TSampler]
    Params: type[BaseModel] = NoParams
    needs_levels: bool = False


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LogNormalParams(_Settings):
    p_mean: float = Field(-1.2, description="mean of ln s_t")
    p_std: float = Field(1.2, gt=0, description="std of ln s_t")


class LogitNormalParams(_Settings):
    logit_mean: float = Field(0.0, description="mean of logit(t)")
    logit_std: float = Field(1.0, gt=0, description="std of logit(t)")


def _levels(params: BaseModel, context: TimeContext) -> TSampler:
    if context.levels is None:
        raise ValueError("t_sampler 'levels' needs the run's corruption levels")
    return LevelTimes(context.levels)


T_SAMPLERS: Registry[TimeLaw] = Registry("t-sampler")
T_SAMPLERS.register("uniform", TimeLaw("t ~ U[0,1]", lambda params, context: uniform_t))
T_SAMPLERS.register("levels", TimeLaw("uniform over the K levels of corruption.levels", _levels, needs_levels=True))
T_SAMPLERS.register(
    "lognormal",
    TimeLaw(
        "EDM's ln s ~ N(p_mean, p_std^2)",
        lambda p, context: LogNormalNoise(context.process, p.p_mean, p.p_std),  # type: ignore[attr-defined]
        LogNormalParams,
    ),
)
T_SAMPLERS.register(
    "logitnormal",
    TimeLaw(
        "t = sigmoid(N(logit_mean, logit_std^2))",
        lambda p, context: LogitNormalTimes(p.logit_mean, p.logit_std),  # type: ignore[attr-defined]
        LogitNormalParams,
    ),
)


def register_t_sampler(name: str, law: TimeLaw, *, replace: bool = False) -> None:
    """Register a training-time law by name (then ``objective.t_sampler = name`` selects it)."""
    if not isinstance(law, TimeLaw):
        raise ValueError(f"a t-sampler entry is a TimeLaw(description, build, Params), got {type(law).__name__}")
    T_SAMPLERS.register(name, law, replace=replace)
