"""Plain progress lines when the output is not a terminal (log files, nohup, SLURM)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from rich.progress import TextColumn
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.progress import LoggedProgress


def _run(console: Console, interval: float) -> None:
    with LoggedProgress(TextColumn("{task.description}"), console=console, interval=interval) as bar:
        task = bar.add_task("work", total=4, loss="--")
        for i in range(4):
            bar.update(task, advance=1, loss=f"{0.5 / (i + 1):.3f}")


def test_plain_lines_off_a_terminal() -> None:
    out = io.StringIO()
    _run(Console(file=out, force_terminal=False, width=200), interval=0.0)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("work 1/4 (25%), loss 0.500")
    assert lines[-1].startswith("work 4/4 (100%), loss 0.125") and "done in" in lines[-1]
    assert len(lines) == 4  # one per update (interval 0), the finished task reported once


def test_long_interval_logs_only_the_end_and_a_terminal_gets_the_bar() -> None:
    out = io.StringIO()
    _run(Console(file=out, force_terminal=False, width=200), interval=3600.0)
    assert out.getvalue().splitlines() == [line for line in out.getvalue().splitlines() if "4/4 (100%)" in line]
    tty = io.StringIO()
    _run(Console(file=tty, force_terminal=True, width=200), interval=0.0)
    assert "(25%)" not in tty.getvalue()  # a terminal shows the live bar, not log lines


def test_train_prints_a_plain_progress_line_when_piped(tmp_path: Path) -> None:
    args = ["train", "--dataset", "synthetic", "--steps", "2", "--batch-size", "8", "--width", "8"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "train 2/2 (100%)" in result.output
