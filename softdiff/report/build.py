"""``write_report``: read the runs, draw their corruption strips, write ``index.html`` atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..imageio import atomic_write_bytes
from ..resources import writable_dir
from .collect import RunRecord, read_run
from .page import Strip, render
from .strip import STRIP_IMAGES, STRIP_LEVELS, corruption_strip

__all__ = ["write_report", "default_out", "REPORT_DIR", "COMPARE_DIR", "INDEX"]

REPORT_DIR = "report"  # RUN/report/index.html for one run
COMPARE_DIR = "compare"  # RUN1/compare/index.html for several
INDEX = "index.html"


def default_out(runs: Sequence[str | Path]) -> Path:
    """Where the page goes without ``--out``: ``RUN/report``, or ``RUN1/compare`` for several runs."""
    return Path(runs[0]) / (REPORT_DIR if len(runs) == 1 else COMPARE_DIR)


def _unique_names(records: list[RunRecord]) -> None:
    """Runs with the same folder name are told apart by their path."""
    names = [r.name for r in records]
    for r in records:
        if names.count(r.name) > 1:
            r.name = str(r.path)
    for i, r in enumerate(records):
        if [x.name for x in records].count(r.name) > 1:
            r.name = f"{r.name} ({i + 1})"


def _strip(record: RunRecord) -> Strip:
    c = record.config.corruption
    try:
        png, ts = corruption_strip(record.config)
    except Exception as err:  # a plugin operator's own code may raise anything: the page says so and goes on
        return None, f"no corruption strip: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    noise = c.noise
    levels = f", {len(c.levels)} selected levels" if c.levels else ""
    caption = (
        f"{c.spec}{levels}: {STRIP_IMAGES} test images (rows) at t = {', '.join(f'{t:.2g}' for t in ts)} "
        f"(columns, {STRIP_LEVELS} times), noise s from {noise.s_min} to {noise.s_max}"
    )
    return png, caption


def write_report(runs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write the report of ``runs`` to ``out/index.html`` (default :func:`default_out`); returns its path.

    ``ValueError`` for a folder that is not a run, or an output folder that cannot be written,
    before anything is drawn.
    """
    if not runs:
        raise ValueError("give at least one run folder")
    records = [read_run(run) for run in runs]
    folder = writable_dir(Path(out) if out is not None else default_out(runs), "report folder")
    _unique_names(records)
    strips = {r.name: _strip(r) for r in records}
    path = folder / INDEX
    atomic_write_bytes(path, render(records, strips).encode())
    path.chmod(0o644)  # a page to share or serve (the atomic write's temporary file is private)
    return path
