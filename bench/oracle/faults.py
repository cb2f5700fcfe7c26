"""Fault runs for issue 14: kill -9 at random moments, SIGTERM, a diverging run, full and read-only disks.

Each trial drives the real command line in a subprocess, exactly as a user or a scheduler
would, on a tiny Fashion-MNIST configuration (or synthetic data without the data set):

* ``kill``: start ``softdiff train ... --resume``, SIGKILL it after a uniformly random delay
  in [0, T] (T = the wall time of an uninterrupted run, start-up included), then run the same
  command again until it exits 0. The run must finish, and its whole loss curve
  (``metrics.jsonl``, one line per step) must equal the uninterrupted run's.
* ``sigterm``: SIGTERM after a random number of logged steps; the process must exit 143
  with a checkpoint at the step it reports, and ``--resume`` must give the same curve.
* ``diverge``: ``--lr 1e6``: the run must stop with exit 2 and one ``error:`` line, and the
  checkpoint ``latest`` names must load (finite weights).
* ``disk``: a 1 MiB tmpfs (full disk) and a read-only bind mount, where the machine lets us
  mount them (root on Linux); otherwise reported as skipped.
* ``fuzz``: the malformed invocations of ``tests/test_cli_fuzz.py`` and the issue 25 corpus
  (``tests/fuzz_corpus.toml``), each classified: as expected, traceback, silently accepted,
  silently wrong (exit 0 but the output breaks its check) or other.

    PYTHONPATH=$PWD nice -n 10 python -m bench.oracle.faults [--kills 20] [--sigterms 5]
    PYTHONPATH=$PWD nice -n 10 python -m bench.oracle.faults --only fuzz   # seconds; keeps the other sections
    # writes bench/results/oracle/faults-COMMIT.json (--out elsewhere); --only replaces just the sections it runs

Also a slow test, ``tests/test_bench_faults.py`` (a few trials; ``-m slow`` or ``SOFTDIFF_SLOW_BENCH=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness.cli import add_common
from bench.harness.result import Result, commit, read_result, result_path, write_result

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("kill", "sigterm", "diverge", "disk", "fuzz")
STEPS = 120


def base_args(dataset: str) -> list[str]:
    return [
        "train", "--dataset", dataset, "--steps", str(STEPS), "--batch-size", "16", "--width", "8",
        "--set", "model.channel_mults=[1, 2]", "--set", "data.prior_images=256", "--set", "train.log_every=1",
        "--set", "train.ckpt_every=10", "--device", "cpu", "--threads", "1", "--no-progress",
    ]  # fmt: skip


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "softdiff", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def losses(run: Path) -> list[tuple[int, float | None]]:
    lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").is_file() else []
    return [(r["step"], r["loss"]) for r in map(json.loads, lines)]


def latest_step(run: Path) -> int | None:
    pointer = run / "latest"
    return int(pointer.read_text().strip().rsplit("-", 1)[1]) if pointer.is_file() else None


def run_to_end(args: list[str], limit: int = 5) -> tuple[int, list[int]]:
    """Run ``args`` until it exits 0 (at most ``limit`` times); returns the attempts and exit codes."""
    codes = []
    for _ in range(limit):
        codes.append(subprocess.run(command(args), env=env(), capture_output=True, text=True).returncode)
        if codes[-1] == 0:
            break
    return len(codes), codes


def kill_trials(dataset: str, n: int, work: Path, rng: random.Random) -> dict:
    reference = work / "reference"
    start = time.perf_counter()
    done = subprocess.run(command([*base_args(dataset), "--out", str(reference)]), env=env(), capture_output=True)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    ref = losses(reference)
    trials = []
    for i in range(n):
        run = work / f"kill-{i:02d}"
        args = [*base_args(dataset), "--out", str(run), "--resume"]
        delay = rng.uniform(0, wall)
        proc = subprocess.Popen(command(args), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        finished_first = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = {"logged_steps": len(losses(run)), "checkpoint": latest_step(run)}
        attempts, codes = run_to_end(args)
        curve = losses(run)
        trials.append(
            {
                "delay_s": round(delay, 2),
                "finished_before_kill": finished_first,
                **at_kill,
                "resume_attempts": attempts,
                "exit_codes": codes,
                "completed": codes[-1] == 0 and latest_step(run) == STEPS,
                "curve_equal": curve == ref,
            }
        )
        print(f"kill {i:2d}: {trials[-1]}", flush=True)
    return {"reference_wall_s": round(wall, 1), "trials": trials}


def sigterm_trials(dataset: str, n: int, work: Path, rng: random.Random) -> list[dict]:
    ref = losses(work / "reference")
    trials = []
    for i in range(n):
        run = work / f"term-{i:02d}"
        args = [*base_args(dataset), "--out", str(run), "--resume"]
        wait_for = rng.randint(1, STEPS - 5)
        proc = subprocess.Popen(command(args), env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while proc.poll() is None and len(losses(run)) < wait_for:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate()
        step = latest_step(run)
        said = next((line for line in output.splitlines() if line.startswith("stopped by SIGTERM")), "")
        attempts, codes = run_to_end(args)
        trials.append(
            {
                "signal_after_logged_steps": wait_for,
                "exit_code": proc.returncode,
                "checkpoint_step": step,
                "line": said,
                "checkpoint_at_reported_step": bool(said) and f"at step {step} " in said,
                "completed": codes[-1] == 0 and latest_step(run) == STEPS,
                "curve_equal": losses(run) == ref,
            }
        )
        print(f"sigterm {i}: {trials[-1]}", flush=True)
    return trials


def diverge_trial(dataset: str, work: Path) -> dict:
    run = work / "diverge"
    args = [*base_args(dataset), "--lr", "1e6", "--set", "train.ckpt_every=2", "--out", str(run)]
    done = subprocess.run(command(args), env=env(), capture_output=True, text=True)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    check = subprocess.run(
        [sys.executable, "-c", f"import softdiff.train as t; print(t.read_checkpoint({str(run)!r}).step)"],
        env=env(), capture_output=True, text=True,
    )  # fmt: skip
    return {
        "exit_code": done.returncode,
        "error_lines": [line for line in lines if line.startswith("error:")],
        "other_lines": [line for line in lines if not line.startswith("error:")],
        "traceback": "Traceback" in done.stdout + done.stderr,
        "latest_checkpoint_loads": check.returncode == 0,
        "latest_checkpoint_step": check.stdout.strip() or check.stderr.strip().splitlines()[-1:],
        "skipped_steps_logged": sum(1 for _, loss in losses(run) if loss is None),
    }


def _mount(args: list[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def disk_trials(dataset: str, work: Path) -> dict:
    results: dict[str, object] = {}
    small, readonly = work / "tmpfs", work / "readonly"
    small.mkdir()
    readonly.mkdir()
    if not _mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)]):
        return {"skipped": "cannot mount a tmpfs here (needs root on Linux)"}
    try:
        run = small / "run"
        args = [*base_args(dataset), "--out", str(run), "--resume"]
        first = subprocess.run(command(args), env=env(), capture_output=True, text=True)
        again = subprocess.run(command(args), env=env(), capture_output=True, text=True)
        leftovers = [str(p.relative_to(small)) for p in small.rglob("*") if p.name.startswith(".")]
        results["full_disk"] = {
            "exit_codes": [first.returncode, again.returncode],
            "outputs": [first.stderr.strip().splitlines() + first.stdout.strip().splitlines()[-1:],
                        again.stderr.strip().splitlines()],
            "tracebacks": ["Traceback" in p.stdout + p.stderr for p in (first, again)],
            "temporaries_left": leftovers,
            "used_kib": int(subprocess.run(["du", "-sk", small], capture_output=True, text=True).stdout.split()[0]),
        }  # fmt: skip
    finally:
        subprocess.run(["umount", str(small)])
    source = work / "ro-source"
    source.mkdir()
    if _mount(["--bind", str(source), str(readonly)]) and _mount(["-o", "remount,bind,ro", str(readonly)]):
        try:
            start = time.perf_counter()
            done = subprocess.run(
                command([*base_args(dataset), "--out", str(readonly / "run")]),
                env=env(),
                capture_output=True,
                text=True,
            )
            results["read_only"] = {
                "exit_code": done.returncode,
                "output": (done.stdout + done.stderr).strip().splitlines(),
                "seconds": round(time.perf_counter() - start, 1),
            }
        finally:
            subprocess.run(["umount", str(readonly)])
    else:
        results["read_only"] = {"skipped": "cannot make a read-only bind mount here"}
    return results


def fuzz_counts() -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    import pytest  # noqa: F401  (the test module needs it importable)
    import test_cli_fuzz as fuzz
    import torch
    from typer.testing import CliRunner

    from softdiff.cli import app

    torch.set_num_threads(1)  # tiny tensors; the in-process commands share this process's threads
    work = Path(tempfile.mkdtemp())
    run = work / "run"
    tiny = ["train", "--dataset", "synthetic", "--steps", "2", "--batch-size", "8", "--width", "8"]
    trained = CliRunner().invoke(app, [*tiny, "--device", "cpu", "--threads", "1", "--no-progress", "--out", str(run)])
    assert trained.exit_code == 0, trained.output

    class Factory:
        def mktemp(self, name: str) -> Path:
            path = work / name
            path.mkdir()
            return path

    paths = fuzz.hostile.__wrapped__(Factory(), run)
    cases = [{"args": args, "expect": "error"} for args in fuzz.CASES] + fuzz.CORPUS
    counts = {"invocations": 0, "as_expected": 0, "tracebacks": 0, "silently_accepted": 0, "silently_wrong": 0}
    counts["other"] = 0
    keys = {"as expected": "as_expected", "traceback": "tracebacks", "silently accepted": "silently_accepted"}
    keys |= {"silently wrong": "silently_wrong", "other": "other"}
    for case in cases:
        args = fuzz._fill(case["args"], paths)
        result = fuzz.runner.invoke(app, args)
        counts["invocations"] += 1
        counts[keys[fuzz.outcome(case, result, args, paths)]] += 1
    counts["expected_errors"] = sum(case["expect"] == "error" for case in cases)
    counts["expected_ok"] = sum(case["expect"] == "ok" for case in cases)
    shutil.rmtree(work)
    return counts


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def run(
    only: list[str], kills: int = 20, sigterms: int = 5, seed: int = 0, previous: dict | None = None
) -> dict[str, object]:
    """The sections in ``only``, on top of ``previous`` (sections not run are kept); with a ``summary``."""
    dataset = "fashion-mnist" if Path("/usr/share/datasets/fashion-mnist").is_dir() else "synthetic"
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="softdiff-faults-"))
    results: dict[str, object] = dict(previous or {})
    results |= {"dataset": dataset, "steps": STEPS, "command": " ".join(base_args(dataset))}
    measured = results.setdefault("measured_at", {})  # the commit each section was last measured at
    measured.update({name: _commit() for name in only})
    if "kill" in only or "sigterm" in only:
        results["kill"] = kill_trials(dataset, kills if "kill" in only else 0, work, rng)
    if "sigterm" in only:
        results["sigterm"] = sigterm_trials(dataset, sigterms, work, rng)
    if "diverge" in only:
        results["diverge"] = diverge_trial(dataset, work)
        print(f"diverge: {results['diverge']}", flush=True)
    if "disk" in only:
        results["disk"] = disk_trials(dataset, work)
        print(f"disk: {results['disk']}", flush=True)
    if "fuzz" in only:
        results["fuzz"] = fuzz_counts()
        print(f"fuzz: {results['fuzz']}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    summary = results.get("summary", {})
    if results.get("kill") and results["kill"]["trials"]:
        trials = results["kill"]["trials"]
        summary["kill"] = {
            "trials": len(trials),
            "completed": sum(t["completed"] for t in trials),
            "curve_equal": sum(t["curve_equal"] for t in trials),
            "killed_before_first_checkpoint": sum(
                t["checkpoint"] is None and not t["finished_before_kill"] for t in trials
            ),
            "finished_before_kill": sum(t["finished_before_kill"] for t in trials),
        }  # fmt: skip
    if results.get("sigterm"):
        trials = results["sigterm"]
        summary["sigterm"] = {
            "trials": len(trials),
            "exit_143": sum(t["exit_code"] == 143 for t in trials),
            "checkpoint_at_reported_step": sum(t["checkpoint_at_reported_step"] for t in trials),
            "completed": sum(t["completed"] for t in trials),
            "curve_equal": sum(t["curve_equal"] for t in trials),
        }
    if results.get("fuzz"):
        summary["fuzz"] = results["fuzz"]
    results["summary"] = summary
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--sigterms", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=list(SECTIONS))
    add_common(parser)
    opts = parser.parse_args()
    parameters = {"kills": opts.kills, "sigterms": opts.sigterms, "seed": opts.seed, "only": opts.only}
    head, dirty = commit()
    out = opts.out or result_path("oracle", "faults", head, dirty, opts.tag)
    previous = read_result(out).metrics if out.is_file() else None
    results = run(opts.only, opts.kills, opts.sigterms, opts.seed, previous)
    print(json.dumps(results["summary"], indent=2))
    write_result(Result.now("oracle", "faults", parameters, results, tag=opts.tag), out)


if __name__ == "__main__":
    main()
