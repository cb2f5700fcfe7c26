"""Readable ticks on a log axis: matplotlib's default labels only powers of ten, so a FID axis from
37 to 98 would carry the single label 10^2. These ticks are the 1-2-5 values in range (every
integer multiple when that leaves fewer than three), labelled as plain numbers.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["log_ticks"]


def _candidates(lo: float, hi: float, multiples: tuple[int, ...]) -> list[float]:
    ticks = []
    for power in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        ticks += [m * 10.0**power for m in multiples if lo <= m * 10.0**power <= hi]
    return ticks


def log_ticks(ax: Any, axis: str = "y") -> None:
    """Put labelled 1-2-5 ticks (or 1..9 ticks) on the log ``axis`` ("x" or "y") of ``ax``, within its limits."""
    from matplotlib.ticker import NullFormatter, NullLocator

    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if not (lo > 0 and hi > lo and math.isfinite(hi)):
        return
    ticks = _candidates(lo, hi, (1, 2, 5))
    if len(ticks) < 3:
        ticks = _candidates(lo, hi, tuple(range(1, 10)))
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yticks if axis == "y" else ax.set_xticks)(ticks, [f"{v:g}" for v in ticks])
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())
    (ax.set_ylim if axis == "y" else ax.set_xlim)(lo, hi)
