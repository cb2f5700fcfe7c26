"""Line charts for the run report, as SVG bytes (matplotlib, text kept as text).

Points that are not finite, or not positive on a log axis, are dropped before plotting:
a chart never draws a NaN, and a skipped window (loss None) is a gap, not a zero.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..plotting import log_ticks

__all__ = ["Series", "line_chart"]


@dataclass(frozen=True)
class Series:
    """One line of a chart: a label and its ``(x, y)`` points (None for a missing value)."""

    label: str
    points: Sequence[tuple[float, float | None]]


def _usable(value: float | None, log: bool) -> bool:
    return value is not None and math.isfinite(value) and (value > 0 or not log)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    markers: bool = False,
    ticks: Sequence[float] | None = None,
) -> bytes:
    """An SVG line chart; ``ticks`` puts labelled x-ticks at those values (e.g. the NFEs of an eval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "softdiff-report", "font.size": 8}):
        fig, ax = plt.subplots(figsize=(5.2, 3.2), dpi=100)
        drawn = 0
        for line in series:
            points = [(x, y) for x, y in line.points if _usable(x, logx) and _usable(y, logy)]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o" if markers else None, markersize=3, linewidth=1.2, label=line.label)
            drawn += 1
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
            if drawn:
                log_ticks(ax, "y")
        if ticks:
            ax.set_xticks(list(ticks), [f"{v:g}" for v in ticks])
            ax.minorticks_off()
        if drawn == 0:
            ax.text(0.5, 0.5, "no finite values to plot", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3, which="both" if logy else "major")
        if drawn > 1 or (drawn == 1 and len(series) > 1):
            ax.legend(fontsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(fig)
    return buffer.getvalue()
