"""Time grids ``1 = t_0 > t_1 > ... > t_K = 0`` for the samplers, and their validation.

Two ways to place the steps:

* :func:`uniform_grid`: even steps in ``t``.
* :func:`level_grid`: steps at the corruption levels chosen by the level selector
  (``softdiff schedule``; the JSON key ``"t"`` holds K increasing source times). A
  process re-timed by that table (``CorruptionConfig.with_levels_file``) already has
  its levels evenly spaced in its own time, so over such a *warped* process
  ``uniform_grid(K - 1)`` is exactly the level grid; ``level_grid`` is for a process
  left in source time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..corrupt import LevelTable

__all__ = ["uniform_grid", "level_grid", "check_grid", "MAX_STEPS"]

MAX_STEPS = 100_000  # far beyond any sampler's useful range (a few thousand at most); a typo, not a request


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


def level_grid(levels: Sequence[float] | Tensor | LevelTable | str | Path, steps: int | None = None) -> Tensor:
    """A decreasing grid through the chosen levels (source times, increasing, as stored under ``"t"``).

    ``steps=None`` visits every level (``K`` levels give ``K - 1`` steps); another step
    count interpolates the table linearly, i.e. takes even steps in the warped time.
    ``levels`` may be the list, a :class:`LevelTable`, or the path of the level JSON.
    """
    if isinstance(levels, (str, Path)):
        table = LevelTable.load(levels, key="t")
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
