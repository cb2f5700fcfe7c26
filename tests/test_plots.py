"""The FID plots people read: log FID axis (a curve at 600 must not flatten one at 20), budget and n stated."""

from __future__ import annotations

from pathlib import Path

import matplotlib.figure
import pytest

from softdiff.eval import plot_fid_vs_nfe
from softdiff.report.charts import Series, line_chart


def cell(nfe: int, fid: float) -> dict:
    return {"nfe": nfe, "fid": fid, "n": 2000, "checkpoint_step": 4009, "features": "fashion-feature-net v1 (128-d)"}


def test_fid_against_nfe_has_log_axes_and_states_n_and_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real_savefig = matplotlib.figure.Figure.savefig

    def record(fig: matplotlib.figure.Figure, *args: object, **kwargs: object) -> None:
        ax = fig.axes[0]
        seen.append((ax.get_xscale(), ax.get_yscale(), ax.get_title()))
        real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    curves = {"vanilla momentum": [cell(5, 630.5), cell(10, 474.1)], "soft-blur": [cell(5, 29.7), cell(10, 18.4)]}
    path = plot_fid_vs_nfe(curves, tmp_path / "fid.png", title="4009 steps x batch 512 per run")
    assert path.stat().st_size > 1000
    [(xscale, yscale, title)] = seen
    assert (xscale, yscale) == ("log", "log")
    assert "4009 steps x batch 512" in title and "n=2000" in title and "checkpoint step 4009" in title


def test_report_charts_drop_what_a_log_axis_cannot_show() -> None:
    svg = line_chart(
        [Series("loss", [(1, 0.5), (2, None), (3, float("nan")), (4, -1.0), (5, 0.25)])],
        title="loss", xlabel="step", ylabel="loss", logy=True,
    ).decode()  # fmt: skip
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "no finite values" not in svg
    empty = line_chart([Series("loss", [(1, None), (2, float("inf"))])], title="t", xlabel="x", ylabel="y").decode()
    assert "no finite values to plot" in empty
