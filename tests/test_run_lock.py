"""One writer per run folder (issue 25 item 6): a live holder refuses the second process, a stale lock is taken over."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.train.lock import LOCK, run_lock

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--dataset", "synthetic", "--steps", "2", "--batch-size", "4", "--width", "8"]
QUIET = ["--device", "cpu", "--threads", "1", "--no-progress"]

HOLD = """
import sys, time
from softdiff.train.lock import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path: Path):
    """Another process holding ``tmp_path/run``'s lock; yields ``(folder, pid)``, then ends that process."""
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield run, proc.pid
    finally:
        proc.kill()
        proc.wait()


def _one_error_line(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("resume", [False, True], ids=["train", "resume"])
def test_a_second_writer_gets_one_line_naming_the_holders_pid(holder: tuple[Path, int], resume: bool) -> None:
    run, pid = holder
    line = _one_error_line([*TRAIN, *QUIET, "--out", str(run), *(["--resume"] if resume else [])])
    assert f"PID {pid}" in line and "in use" in line
    assert not (run / "checkpoints").exists()  # the refused process wrote nothing
    assert json.loads((run / LOCK).read_text())["pid"] == pid  # and left the holder's lock alone


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename}))
    result = CliRunner().invoke(app, [*TRAIN, *QUIET, "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "latest").is_file()
    assert not (run / LOCK).exists()  # released at the end


def test_the_lock_is_released_when_training_fails(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert CliRunner().invoke(app, [*TRAIN, *QUIET, "--out", str(run)]).exit_code == 0
    assert "already holds a run" in _one_error_line([*TRAIN, *QUIET, "--out", str(run)])  # refused under the lock
    assert not (run / LOCK).exists()
    with run_lock(run):  # and can be taken again at once
        pass


def _contend(folder: str, start: float, results: multiprocessing.Queue, done: multiprocessing.Event) -> None:
    time.sleep(max(0.0, start - time.time()))
    try:
        with run_lock(folder):
            results.put("won")
            done.wait(60)  # hold until every contender has reported: two winners would overlap
    except ValueError as err:
        results.put(str(err))


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale-lock"])
def test_of_processes_racing_for_one_folder_exactly_one_wins(tmp_path: Path, stale: bool) -> None:
    run = tmp_path / "run"
    run.mkdir()
    if stale:
        (run / LOCK).write_text(json.dumps({"pid": _dead_pid()}))
    context = multiprocessing.get_context("spawn")
    results, done = context.Queue(), context.Event()
    start = time.time() + 3.0  # most processes are up before the race starts
    procs = [context.Process(target=_contend, args=(str(run), start, results, done)) for _ in range(4)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    done.set()
    for proc in procs:
        proc.join(timeout=30)
    assert outcomes.count("won") == 1, outcomes
    assert all("in use by another softdiff train (PID " in o for o in outcomes if o != "won"), outcomes
