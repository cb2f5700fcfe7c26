"""Time grids ``1 = t_0 > t_1 > ... > t_K = 0`` for the samplers, and their validation.

Five ways to place the steps, entries of the registry ``GRIDS`` (:func:`time_grid` picks one
by name; :func:`register_grid` adds one, from a plugin module too):

* ``auto`` (:func:`softdiff.samplers.autogrid.auto_grid`): the grid optimised for one
  sampler and step count on the model's Gaussian fit (Align Your Steps, for any diagonal
  ``C_t``); it needs the sampler and the fit, so :func:`softdiff.samplers.resolve_grid`
  resolves it (``softdiff sample`` and ``softdiff eval`` take the fit from the checkpoint).

* ``uniform`` (:func:`uniform_grid`): even steps in ``t``.
* ``log-noise`` (:func:`log_noise_grid`): even steps in ``log s_t`` (in ``lambda = -log s``,
  the multistep solvers' clock).
* ``edm`` (:func:`edm_grid`): EDM's ``rho``-spaced noise levels (Karras et al. 2022, eq. 5),
  ``s_i = (s_1^(1/rho) + i/K (s_0^(1/rho) - s_1^(1/rho)))^rho``: short steps at low noise.
* ``levels`` (:func:`level_grid`): steps at the corruption levels chosen by the level selector
  (``softdiff schedule``; the JSON key ``"t"`` holds K increasing source times). A
  process re-timed by that table (``softdiff.schedule.retime``) already has
  its levels evenly spaced in its own time, so over such a *warped* process
  ``uniform_grid(K - 1)`` is exactly the level grid; ``level_grid`` is for a process
  left in source time.

The two noise-level grids place ``s_t`` values and map them back to times with
:func:`noise_inverse`, a bisection on the process's own ``s`` (which need only be
non-decreasing: on a flat stretch it returns the stretch's earliest time).

**Spec**: ``NAME[:STOP][:key=value,...]``, the operators' spec grammar
(:mod:`softdiff.corrupt.spec`): ``edm``, ``edm:levels``, ``edm:rho=5``, ``edm:0.05:rho=3``.
The parameters are checked against the grid's ``Params`` (``edm`` takes ``rho``).

**Stop time** (``"NAME:STOP"``, like EDM's ``sigma_min``): the grid's first ``steps - 1``
steps run from 1 down to ``STOP`` and the last step, the sampler's final denoising step
(``C_0 x0_hat``), jumps from ``STOP`` to 0. Below the first selected level the corrupted
data are one Fréchet hop from the clean data, so steps spent there are wasted;
``STOP = levels`` stops at that level (for a process re-timed by selected levels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import Tensor

from ..corrupt import CorruptionConfig, CorruptionProcess, LevelTable
from ..corrupt.spec import split_part
from ..registry import NoParams, Registry, params_model
from ..schedule import read_levels

__all__ = [
    "MAX_STEPS",
    "GRIDS",
    "GridRule",
    "GridSpec",
    "register_grid",
    "parse_grid",
    "time_grid",
    "uniform_grid",
    "log_noise_grid",
    "edm_grid",
    "level_grid",
    "check_grid",
    "noise_inverse",
    "first_level",
]

MAX_STEPS = 100_000  # far beyond any sampler's useful range (a few thousand at most); a typo, not a request
EDM_RHO = 7.0


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if steps > MAX_STEPS:
        raise ValueError(f"steps must be at most {MAX_STEPS:,}, got {steps:,}")


def uniform_grid(steps: int, t_max: float = 1.0, t_min: float = 0.0) -> Tensor:
    """``steps + 1`` evenly spaced times from ``t_max`` down to ``t_min`` (float64)."""
    _check_steps(steps)
    if not 0 <= t_min < t_max <= 1:
        raise ValueError(f"a grid needs 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
    return torch.linspace(t_max, t_min, steps + 1, dtype=torch.float64)


def level_grid(
    levels: Sequence[float] | Tensor | LevelTable | str | Path,
    steps: int | None = None,
    *,
    corruption: CorruptionConfig | None = None,
    dataset: str | None = None,
    shape: tuple[int, ...] | None = None,
) -> Tensor:
    """A decreasing grid through the chosen levels (source times, increasing, as stored under ``"t"``).

    ``steps=None`` visits every level (``K`` levels give ``K - 1`` steps); another step
    count interpolates the table linearly, i.e. takes even steps in the warped time.
    ``levels`` may be the list, a :class:`LevelTable`, or the path of the level JSON, which
    is refused when it was chosen for another corruption than ``corruption``, or fitted on
    another ``dataset`` or image ``shape`` (each when given).
    """
    if isinstance(levels, (str, Path)):
        level_file = read_levels(levels)
        if corruption is not None:
            level_file.check(corruption, dataset=dataset, shape=shape)
        table = LevelTable(level_file.times)
    elif isinstance(levels, LevelTable):
        table = levels
    else:
        table = LevelTable(levels)
    values = table.values
    if bool((values.diff() <= 0).any()) or not 0 <= float(values[0]) < float(values[-1]) <= 1:
        raise ValueError("levels must be strictly increasing times in [0, 1], as `softdiff schedule` writes under 't'")
    if steps is None:
        return check_grid(values.flip(0))
    return check_grid(table(uniform_grid(steps)))


def check_grid(ts: Tensor | Sequence[float]) -> Tensor:
    """Return ``ts`` as a 1-D float64 tensor, or raise if it is not a strictly decreasing grid in [0, 1]."""
    ts = torch.as_tensor(ts, dtype=torch.float64).detach().cpu()
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"ts must be a 1-D tensor of at least 2 times (start, end), got shape {tuple(ts.shape)}")
    if not bool(torch.isfinite(ts).all()) or bool((ts < 0).any()) or bool((ts > 1).any()):
        raise ValueError(f"ts must lie in [0, 1], got values from {ts.min().item():.4g} to {ts.max().item():.4g}")
    if bool((ts.diff() >= 0).any()):
        raise ValueError("ts must be strictly decreasing (noisiest time first), e.g. uniform_grid(50)")
    return ts


def noise_inverse(
    process: CorruptionProcess, levels: Tensor | Sequence[float], lo: float = 0.0, hi: float = 1.0
) -> Tensor:
    """The earliest ``t`` in ``[lo, hi]`` with ``s_t >= level``, per level (float64 bisection to ~1e-16).

    ``s`` must be non-decreasing in ``t`` (as every sampler requires); levels outside
    ``[s_lo, s_hi]`` give ``lo`` or ``hi``. Where ``s`` is flat, the flat stretch's first time.
    """
    target = torch.as_tensor(levels, dtype=torch.float64).reshape(-1)
    below = torch.full_like(target, float(lo))
    above = torch.full_like(target, float(hi))
    for _ in range(60):  # halves [lo, hi] 60 times: below 1e-18 for [0, 1]
        mid = 0.5 * (below + above)
        reached = torch.as_tensor(process.s(mid), dtype=torch.float64) >= target
        above, below = torch.where(reached, mid, above), torch.where(reached, below, mid)
    return above


def _noise_at(process: CorruptionProcess, t: float) -> float:
    return float(torch.as_tensor(process.s(torch.tensor(t, dtype=torch.float64)), dtype=torch.float64))


def _noise_span(process: CorruptionProcess, t_min: float, grid: str) -> tuple[float, float]:
    """``(s_t_min, s_1)``, or ValueError when the noise does not change enough to place steps by it."""
    if not 0 <= t_min < 1:
        raise ValueError(f"a grid needs 0 <= t_min < 1, got t_min={t_min}")
    low, high = _noise_at(process, t_min), _noise_at(process, 1.0)
    if not high > low:
        raise ValueError(
            f"grid {grid!r} places steps by noise level, but s_t does not change between t = {t_min:.4g} "
            f"and 1 (s = {high:.4g}); use the uniform or levels grid"
        )
    return low, high


def _from_levels(process: CorruptionProcess, levels: Tensor, t_min: float, grid: str) -> Tensor:
    """Times of decreasing noise ``levels`` (ends pinned to 1 and ``t_min``), checked strictly decreasing."""
    inner = noise_inverse(process, levels[1:-1], lo=t_min)
    ts = torch.cat([torch.ones(1, dtype=torch.float64), inner, torch.full((1,), float(t_min), dtype=torch.float64)])
    if bool((ts.diff() >= 0).any()):
        raise ValueError(
            f"grid {grid!r} with {len(levels) - 1} steps puts two steps at the same time (the noise level "
            "barely changes there); use fewer steps or the uniform grid"
        )
    return ts


def log_noise_grid(process: CorruptionProcess, steps: int, t_min: float = 0.0) -> Tensor:
    """Even steps in ``log s_t`` from ``t = 1`` down to ``t_min`` (needs ``0 < s_t_min < s_1``)."""
    _check_steps(steps)
    low, high = _noise_span(process, t_min, "log-noise")
    if low <= 0:
        raise ValueError("grid 'log-noise' needs s_t > 0 at its end (log s_t is -inf at zero noise); use edm")
    levels = torch.linspace(math.log(high), math.log(low), steps + 1, dtype=torch.float64).exp()
    return _from_levels(process, levels, t_min, "log-noise")


def edm_grid(process: CorruptionProcess, steps: int, rho: float = EDM_RHO, t_min: float = 0.0) -> Tensor:
    """EDM's ``rho``-spaced noise levels from ``s_1`` down to ``s_t_min``, mapped back to times."""
    _check_steps(steps)
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho}")
    low, high = _noise_span(process, t_min, "edm")
    ramp = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    levels = (high ** (1 / rho) + ramp * (low ** (1 / rho) - high ** (1 / rho))) ** rho
    return _from_levels(process, levels, t_min, "edm")


def first_level(process: CorruptionProcess) -> float:
    """The process time of the first selected level above the clean one (needs a re-timed process)."""
    if process.warp is None:
        raise ValueError(
            "stop 'levels' needs a process trained on selected levels (train --levels FILE); give a time instead"
        )
    values = process.warp.values
    above = (values > values[0]).nonzero()
    if not len(above):
        raise ValueError("the selected levels are all equal, so there is no first level to stop at")
    return int(above[0]) / (len(values) - 1)


def _parse_stop(text: str, process: CorruptionProcess) -> float:
    if text == "levels":
        return first_level(process)
    try:
        stop = float(text)
    except ValueError:
        raise ValueError(f"bad grid stop {text!r}: give a time in (0, 1) or 'levels', e.g. edm:levels") from None
    if not 0 < stop < 1:
        raise ValueError(f"bad grid stop {text!r}: the stop time must lie in (0, 1)")
    return stop


@dataclass(frozen=True)
class GridRule:
    """A registered grid: ``build(process, steps, t_min, params)`` gives ``steps + 1`` times from 1 to ``t_min``.

    ``params`` is an instance of ``Params`` (the settings a spec gives after the name). The
    result is checked by :func:`check_grid`, so a plugin's grid is held to the built-ins' rules.
    """

    description: str
    build: Callable[[CorruptionProcess, int, float, BaseModel], Tensor]
    Params: type[BaseModel] = NoParams


class EdmParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rho: float = Field(EDM_RHO, gt=0, le=100, description="EDM's rho: larger puts more steps at low noise")


def _auto(process: CorruptionProcess, steps: int, t_min: float, params: BaseModel) -> Tensor:
    raise ValueError(
        "grid 'auto' (no stop) is optimised for one sampler on a model's data fit: sample a trained run "
        "(softdiff sample --ckpt RUN) or call softdiff.samplers.resolve_grid(..., sampler=, fit=)"
    )


def _levels(process: CorruptionProcess, steps: int, t_min: float, params: BaseModel) -> Tensor:
    if process.warp is None:
        raise ValueError(
            "grid 'levels' needs a process trained on selected levels (train --levels FILE); "
            "pass the level JSON file itself as the grid instead"
        )
    return uniform_grid(steps, t_min=t_min)  # the levels sit evenly in the re-timed process's time


GRIDS: Registry[GridRule] = Registry("grid", dashes=True)
GRIDS.register("auto", GridRule("optimised for one sampler on the run's Gaussian data fit", _auto))
GRIDS.register(
    "uniform", GridRule("even steps in t", lambda process, steps, t_min, p: uniform_grid(steps, t_min=t_min))
)
GRIDS.register(
    "log-noise",
    GridRule("even steps in log s_t", lambda process, steps, t_min, p: log_noise_grid(process, steps, t_min)),
)
GRIDS.register(
    "edm",
    GridRule(
        "EDM's rho-spaced noise levels",
        lambda process, steps, t_min, p: edm_grid(process, steps, rho=p.rho, t_min=t_min),  # type: ignore[attr-defined]
        EdmParams,
    ),
)
GRIDS.register("levels", GridRule("steps at the selected corruption levels", _levels))


def register_grid(name: str, rule: GridRule, *, replace: bool = False) -> None:
    """Register a time grid by name (then ``--grid NAME`` and ``time_grid(NAME, ...)`` select it)."""
    if not isinstance(rule, GridRule):
        raise ValueError(f"a grid entry is a GridRule(description, build, Params), got {type(rule).__name__}")
    GRIDS.register(name, rule, replace=replace)


@dataclass(frozen=True)
class GridSpec:
    """A parsed grid spec: a registered name (or a level JSON file), the stop text, and the checked settings."""

    name: str
    stop: str | None = None
    params: BaseModel | None = None

    @property
    def is_file(self) -> bool:
        return self.name.endswith(".json")


def parse_grid(text: str) -> GridSpec:
    """``"edm:levels:rho=5"`` -> its name, stop and settings, checked for form (nothing is built).

    A one-line ``ValueError`` names an unknown grid (listing the registered ones), an empty
    stop, or a setting the grid does not take.
    """
    part = split_part(text, "grid")
    name, colon, stop = part.ref.partition(":")
    if colon and not stop:
        raise ValueError(f"grid {text!r} has an empty stop: give NAME:STOP with a time in (0, 1) or 'levels'")
    if name.endswith(".json"):
        if stop or part.params:
            raise ValueError(f"grid {text!r}: a level JSON file takes neither a stop nor settings")
        return GridSpec(name)
    if name not in GRIDS:
        raise ValueError(
            f"unknown grid {name!r}; choose one of {', '.join(GRIDS)} (optionally NAME:STOP), or a level JSON file"
        )
    try:
        params = GRIDS.params(name, part.params)
    except ValidationError as err:
        problem = err.errors()[0]
        if problem["type"] == "extra_forbidden":
            known = ", ".join(params_model(GRIDS.get(name)).model_fields) or "none"
            raise ValueError(
                f"grid {text!r}: {name} takes no setting {problem['loc'][0]!r} (its settings: {known})"
            ) from None
        where = ".".join(str(x) for x in problem["loc"]) or "settings"
        raise ValueError(f"grid {text!r}: {where}: {problem['msg']}") from None
    return GridSpec(name, stop or None, params)


def _named_grid(spec: GridSpec, process: CorruptionProcess, steps: int, t_min: float) -> Tensor:
    ts = GRIDS.get(spec.name).build(process, steps, t_min, spec.params or NoParams())
    ts = check_grid(ts)
    if len(ts) != steps + 1 or float(ts[0]) != 1.0 or abs(float(ts[-1]) - t_min) > 1e-12:
        raise ValueError(
            f"grid {spec.name!r} gave {len(ts)} times from {float(ts[0]):.4g} to {float(ts[-1]):.4g}; "
            f"it must give steps + 1 = {steps + 1} times from 1 down to {t_min:.4g}"
        )
    return ts


def time_grid(
    grid: str | Tensor | Sequence[float],
    process: CorruptionProcess,
    steps: int,
    *,
    corruption: CorruptionConfig | None = None,
    dataset: str | None = None,
    shape: tuple[int, ...] | None = None,
) -> Tensor:
    """A grid of ``steps`` steps by spec (a ``GRIDS`` name, ``NAME:STOP``, settings), a level JSON file, or times.

    ``corruption`` (the config ``process`` was built from), ``dataset`` and ``shape`` (those
    of the run) let a level JSON file be checked against the corruption and the data it was
    chosen for (:meth:`softdiff.schedule.LevelFile.check`).

    ``levels`` needs a process re-timed by selected levels (``--levels`` at training time),
    over which it is ``uniform_grid(steps)``; a level JSON file gives ``level_grid(path, steps)``.
    With a stop, ``steps - 1`` steps go from 1 to the stop time and one from there to 0.
    ``auto`` needs a sampler and a data fit: :func:`softdiff.samplers.resolve_grid` takes it.
    """
    if not isinstance(grid, str):
        return check_grid(grid)
    _check_steps(steps)
    spec = parse_grid(grid)
    if spec.is_file:
        return level_grid(spec.name, steps, corruption=corruption, dataset=dataset, shape=shape)
    if spec.stop is None:
        return _named_grid(spec, process, steps, 0.0)
    stop = _parse_stop(spec.stop, process)
    if steps == 1:
        _named_grid(spec, process, 1, 0.0)  # still reject an unusable name
        return torch.tensor([1.0, 0.0], dtype=torch.float64)
    return torch.cat([_named_grid(spec, process, steps - 1, stop), torch.zeros(1, dtype=torch.float64)])
