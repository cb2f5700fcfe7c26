"""Schedules: maps from time ``t`` in [0, 1] to a strength (blur width, mask fraction, noise).

All are small callables on a tensor of times. ``LevelTable`` is the format the level
selector produces (read from its JSON by :func:`softdiff.schedule.read_levels`): values at evenly
spaced times, interpolated linearly in between.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from ..tensors import DeviceCopies

__all__ = [
    "Schedule",
    "Geometric",
    "Linear",
    "LevelTable",
    "GeometricNoise",
    "LinearNoise",
]


@runtime_checkable
class Schedule(Protocol):
    """Anything that maps a tensor of times to a tensor of strengths of the same shape."""

    def __call__(self, t: Tensor) -> Tensor: ...


def _check_finite(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")


class Geometric:
    """``lo * (hi / lo) ** t``: even steps in log-strength (log-linear blur width, VE noise)."""

    def __init__(self, lo: float, hi: float) -> None:
        _check_finite(lo=lo, hi=hi)
        if lo <= 0 or hi <= 0:
            raise ValueError(f"a geometric schedule needs positive end points, got lo={lo}, hi={hi}")
        self.lo, self.hi = float(lo), float(hi)

    def __call__(self, t: Tensor) -> Tensor:
        return self.lo * (self.hi / self.lo) ** t

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.lo}, {self.hi})"


class Linear:
    """``lo + (hi - lo) * t``: even steps in strength (mask fraction)."""

    def __init__(self, lo: float, hi: float) -> None:
        _check_finite(lo=lo, hi=hi)
        self.lo, self.hi = float(lo), float(hi)

    def __call__(self, t: Tensor) -> Tensor:
        return self.lo + (self.hi - self.lo) * t

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.lo}, {self.hi})"


_COPIES: weakref.WeakKeyDictionary[LevelTable, DeviceCopies] = weakref.WeakKeyDictionary()


class LevelTable:
    """Strength given at ``K`` evenly spaced times ``0, 1/(K-1), ..., 1``; linear in between."""

    def __init__(self, values: Sequence[float] | Tensor) -> None:
        table = torch.as_tensor(values, dtype=torch.float64).flatten()
        if table.numel() < 2:
            raise ValueError(f"a level table needs at least 2 levels, got {table.numel()}")
        if not bool(torch.isfinite(table).all()):
            raise ValueError("a level table must hold finite numbers only")
        self.values = table

    def __call__(self, t: Tensor) -> Tensor:
        table = self._copies().like(t)
        pos = t.clamp(0, 1) * (table.numel() - 1)
        lo = pos.floor().long().clamp(max=table.numel() - 2)
        frac = pos - lo.to(t.dtype)
        return table[lo] * (1 - frac) + table[lo + 1] * frac

    def to_list(self) -> list[float]:
        return self.values.tolist()

    def _copies(self) -> DeviceCopies:
        """The table's copy on each device and dtype it is used in, so a GPU step copies no table.

        Kept beside the object, not in it: an operator's record (its identity in a checkpoint)
        is its state, which must not change with the devices it has run on.
        """
        copies = _COPIES.get(self)
        if copies is None or copies.value is not self.values:
            copies = _COPIES[self] = DeviceCopies(self.values)
        return copies

    def __repr__(self) -> str:
        return f"LevelTable({len(self.values)} levels, {self.values[0].item():.4g} .. {self.values[-1].item():.4g})"


class _PositiveNoise:
    """Mixin check: the theory needs ``s_t > 0`` so every ``q_t`` has full support."""

    @staticmethod
    def _check(s_min: float, s_max: float) -> None:
        _check_finite(s_min=s_min, s_max=s_max)
        if s_min <= 0:
            raise ValueError(f"noise level s_min must be > 0 (every q_t needs full support), got {s_min}")
        if s_max < s_min:
            raise ValueError(f"noise level s_max must be >= s_min, got s_min={s_min}, s_max={s_max}")


class GeometricNoise(Geometric, _PositiveNoise):
    """``s_t = s_min * (s_max / s_min) ** t``."""

    def __init__(self, s_min: float, s_max: float) -> None:
        self._check(s_min, s_max)
        super().__init__(s_min, s_max)


class LinearNoise(Linear, _PositiveNoise):
    """``s_t = s_min + (s_max - s_min) * t``."""

    def __init__(self, s_min: float, s_max: float) -> None:
        self._check(s_min, s_max)
        super().__init__(s_min, s_max)
