"""``softdiff report``: one HTML page per run (or several side by side) that works offline."""

from __future__ import annotations

from pathlib import Path

import typer

from ..report import write_report
from .common import console, user_errors


@user_errors
def report(
    runs: list[Path] = typer.Argument(..., help="Run folders (the --out of softdiff train); several: side by side."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder of index.html (default: RUN/report, or RUN1/compare for several runs)."
    ),
) -> None:
    """Write a self-contained HTML report: config, corruption strip, curves, previews, evals, restorations.

    Every image is inlined, so the page can be mailed or opened offline. A run without
    evaluations or previews is still reported; the page says what is missing.
    """
    path = write_report(runs, out)
    console.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB); open it in a browser", highlight=False)
