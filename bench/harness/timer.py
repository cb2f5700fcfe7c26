"""The one timer: variants measured round-robin within one run.

Each repeat calls every variant once, in turn, so load from other processes on a shared
machine hits all of them alike and their ratios are fair. Each call is timed in wall time
and in CPU time of this process (on a loaded machine the wall clock partly measures the
neighbours; CPU time measures the work), with a CUDA sync around it when a device is given.
Interference only adds time, so ``min`` is the least noisy estimate; ``median`` is reported
beside it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Timing:
    """Wall and CPU seconds of every timed call of one variant."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def min(self) -> float:
        return min(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    @property
    def cpu_min(self) -> float:
        return min(self.cpu)

    def summary(self, scale: float = 1e3) -> dict[str, Any]:
        """Median and minimum wall and CPU time (ms by default) and the raw wall samples."""
        return {
            "median": scale * self.median,
            "min": scale * self.min,
            "cpu_median": scale * self.cpu_median,
            "cpu_min": scale * self.cpu_min,
            "samples": [scale * w for w in self.wall],
        }


def _sync(device: Any) -> None:
    if device is not None and getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: Any = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call of ``fn``."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def round_robin(
    variants: Mapping[str, Callable[[], object]],
    repeats: int,
    *,
    warmup: int = 1,
    device: Any = None,
    before: Callable[[str], None] | None = None,
) -> dict[str, Timing]:
    """Time every variant ``repeats`` times, one call of each per round, after ``warmup`` untimed rounds.

    ``before(name)`` runs untimed ahead of each call (e.g. to set the thread count of a variant).
    """
    timings = {name: Timing() for name in variants}
    for round_ in range(warmup + repeats):
        for name, fn in variants.items():
            if before is not None:
                before(name)
            wall, cpu = time_call(fn, device)
            if round_ >= warmup:
                timings[name].wall.append(wall)
                timings[name].cpu.append(cpu)
    return timings
