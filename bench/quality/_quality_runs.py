"""Training side of ``bench/quality/quality.py``: recipes -> run configs, resumable sequential or parallel runs.

A *recipe* file (``bench/quality/recipes/NAME.toml``) holds only the ``corruption`` and ``objective``
sections; the *budget* file holds ``data``, ``model``, ``optim`` and ``train``. Every run is
budget + its recipe + ``train.steps``, so the runs differ only in what their recipes say.
Training either happens in this process (``softdiff.train.train``, one run after the other)
or in one ``python -m softdiff train`` process per run, all at once (``--parallel``). Both
resume a run that already has a checkpoint, and both append a line per training segment
to ``RUN/quality-train.jsonl`` (steps, wall seconds, device), the record of its cost.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import softdiff
from softdiff.data import load_dataset
from softdiff.distributed import resolve_device
from softdiff.train import RunConfig, load_config_file, resolve_checkpoint, train
from softdiff.train.config import apply_overrides
from softdiff.train.trainer import METRICS

RECIPE_SECTIONS = ("corruption", "objective")
BUDGET_SECTIONS = ("data", "model", "optim", "train")
SEGMENTS = "quality-train.jsonl"
PLAN = "plan.json"
Log = Callable[[str], None]


@dataclass
class Recipe:
    name: str
    path: Path
    sections: dict[str, Any]


@dataclass
class Job:
    """One run to train: its name, full config and folder."""

    name: str
    config: RunConfig
    out: Path


def load_recipe(spec: str, recipe_dir: Path) -> Recipe:
    """``soft-blur`` -> ``recipe_dir/soft-blur.toml``; a path to a config file is taken as is."""
    path = Path(spec) if Path(spec).suffix else recipe_dir / f"{spec}.toml"
    sections = load_config_file(path)
    extra = sorted(set(sections) - set(RECIPE_SECTIONS))
    if extra:
        raise ValueError(
            f"recipe {path} sets {', '.join(extra)}; a recipe sets only {' and '.join(RECIPE_SECTIONS)}, "
            f"the shared budget ({', '.join(BUDGET_SECTIONS)}) lives in the --budget file"
        )
    return Recipe(path.stem, path, sections)


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``["train.batch_size=512"]`` -> ``{"train.batch_size": 512}`` (JSON values, else strings), budget keys only."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key.split(".")[0] not in BUDGET_SECTIONS or "." not in key:
            raise ValueError(
                f"--set expects SECTION.KEY=VALUE with SECTION one of {', '.join(BUDGET_SECTIONS)} "
                f"(recipes own {' and '.join(RECIPE_SECTIONS)}), got {item!r}"
            )
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def load_budget(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The budget file with the dotted overrides applied (plain data, validated with each recipe)."""
    budget = load_config_file(path)
    extra = sorted(set(budget) - set(BUDGET_SECTIONS))
    if extra:
        raise ValueError(f"budget {path} sets {', '.join(extra)}; it may set only {', '.join(BUDGET_SECTIONS)}")
    return apply_overrides(budget, overrides)


def run_config(budget: dict[str, Any], recipe: Recipe, steps: int) -> RunConfig:
    """Budget + recipe + ``train.steps``: the config of one run (pydantic-validated)."""
    merged = {**apply_overrides(budget, {"train.steps": steps}), **recipe.sections}
    try:
        return RunConfig.model_validate(merged)
    except ValueError as err:
        raise ValueError(f"recipe {recipe.path} with the budget is not a valid run config: {err}") from None


def training_images(budget: dict[str, Any]) -> int:
    """Images in the training split of the budget's data set (what an epoch is)."""
    data = RunConfig.model_validate(budget).data
    return len(load_dataset(data.dataset, "train", data.data_dir, image_size=data.image_size, channels=data.channels))


def steps_for_epochs(epochs: float, images: int, batch_size: int) -> int:
    return max(1, math.ceil(epochs * images / batch_size))


def checkpoint_step(out: Path) -> int | None:
    """The step of the run's latest checkpoint (None: not started), read from its manifest only."""
    if not (out / "latest").is_file():
        return None
    return int(json.loads((resolve_checkpoint(out) / "manifest.json").read_text())["step"])


def check_same_run(job: Job) -> None:
    """Refuse to resume a run whose recipe or budget changed since it started (train.steps may change)."""
    stored = RunConfig.model_validate_json((resolve_checkpoint(job.out) / "config.json").read_bytes())
    requested = job.config.as_stored_by(stored)
    changed = [
        s for s in ("corruption", "objective", "model", "data", "optim") if getattr(stored, s) != getattr(requested, s)
    ]
    changed += [f"train.{k}" for k in ("batch_size", "seed") if getattr(stored.train, k) != getattr(requested.train, k)]
    if changed:
        raise ValueError(
            f"{job.out} was trained with another {', '.join(changed)} than {job.name} now asks for; "
            "move the run folder away (or pass another --runs) to start it afresh"
        )


def device_name(device: str) -> str:
    """What trains: the GPU's name, or the CPU's architecture and core count."""
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return torch.cuda.get_device_name(resolved)
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def _loop_seconds(out: Path) -> float:
    """Seconds of the last training segment's loop (``elapsed_s`` restarts with every process)."""
    lines = (out / METRICS).read_text().splitlines() if (out / METRICS).is_file() else []
    return float(json.loads(lines[-1])["elapsed_s"]) if lines else 0.0


def _segment(job: Job, start: int | None, seconds: float, mode: str) -> dict[str, Any]:
    end = checkpoint_step(job.out) or 0
    record = {
        "from_step": start or 0,
        "to_step": end,
        "images": (end - (start or 0)) * job.config.train.batch_size,
        "seconds": seconds,
        "loop_seconds": _loop_seconds(job.out) if end > (start or 0) else 0.0,
        "mode": mode,
        "threads": job.config.train.threads,
        "device": device_name(job.config.train.device),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    with (job.out / SEGMENTS).open("a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def segments(out: Path) -> list[dict[str, Any]]:
    path = out / SEGMENTS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _pending(jobs: Sequence[Job], log: Log) -> list[tuple[Job, int | None]]:
    """The jobs below their step target, with the step each starts from (None: fresh)."""
    todo = []
    for job in jobs:
        step = checkpoint_step(job.out)
        if step is not None:
            check_same_run(job)
        if step is None or step < job.config.train.steps:
            todo.append((job, step))
        else:
            log(f"{job.name}: already at step {step} (target {job.config.train.steps})")
    return todo


def train_sequential(jobs: Sequence[Job], log: Log) -> list[dict[str, Any]]:
    """Train (or resume) each run in this process, one after the other."""
    records = []
    for job, start in _pending(jobs, log):
        log(f"{job.name}: training steps {start or 0} -> {job.config.train.steps} in {job.out}")
        began = time.perf_counter()
        train(job.config, job.out, resume=start is not None, progress=False)
        records.append(_segment(job, start, time.perf_counter() - began, "sequential"))
        log(f"{job.name}: step {job.config.train.steps} after {records[-1]['seconds']:.0f} s")
    return records


def _command(job: Job, resume: bool) -> list[str]:
    request = job.out / "request.json"
    request.write_text(job.config.model_dump_json(indent=2))
    command = [sys.executable, "-m", "softdiff", "train", "--config", str(request), "--out", str(job.out)]
    return command + ["--no-progress"] + (["--resume"] if resume else [])


def _latest_logged(out: Path) -> str:
    lines = (out / METRICS).read_text().splitlines() if (out / METRICS).is_file() else []
    try:
        record = json.loads(lines[-1])
        return f"step {record['step']}, loss {record['loss']:.4f}, {record['images_per_s']:.0f} images/s"
    except (IndexError, json.JSONDecodeError, KeyError):
        return "starting"


def train_parallel(jobs: Sequence[Job], log: Log, report_every: float = 60.0) -> list[dict[str, Any]]:
    """One ``softdiff train`` process per run, all at once; logs in ``RUN/train.log``; raises if any fails."""
    env = dict(os.environ)  # the children import the same softdiff as this process
    env["PYTHONPATH"] = os.pathsep.join([str(Path(softdiff.__file__).parents[1]), env.get("PYTHONPATH", "")])
    running = []
    for job, start in _pending(jobs, log):
        job.out.mkdir(parents=True, exist_ok=True)
        command = _command(job, start is not None)
        log(f"{job.name}: training steps {start or 0} -> {job.config.train.steps}: {' '.join(command)}")
        with (job.out / "train.log").open("a") as logfile:
            process = subprocess.Popen(command, stdout=logfile, stderr=subprocess.STDOUT, env=env)
        running.append((job, start, process, time.perf_counter()))
    try:
        return _wait(running, log, report_every)
    finally:  # interrupted (Ctrl-C, SIGTERM, a time limit): no orphan keeps writing a run folder
        for _, _, process, _ in running:
            process.terminate()
        for _, _, process, _ in running:
            process.wait()


def _wait(running: list, log: Log, report_every: float) -> list[dict[str, Any]]:
    """Poll the training processes until all have ended; a plain progress line every ``report_every`` s."""
    records, failed, last_report = [], [], time.perf_counter()
    while running:
        time.sleep(0.2)
        for entry in list(running):
            job, start, process, began = entry
            if process.poll() is None:
                continue
            running.remove(entry)
            if process.returncode != 0:
                tail = (job.out / "train.log").read_text().strip().splitlines()[-3:]
                failed.append(f"{job.name} (exit {process.returncode}): {' | '.join(tail)}")
                continue
            records.append(_segment(job, start, time.perf_counter() - began, "parallel"))
            log(f"{job.name}: step {job.config.train.steps} after {records[-1]['seconds']:.0f} s")
        if running and time.perf_counter() - last_report >= report_every:
            last_report = time.perf_counter()
            log("; ".join(f"{job.name}: {_latest_logged(job.out)}" for job, *_ in running))
    if failed:
        raise ValueError("training failed: " + "; ".join(failed))
    return records


def train_all(jobs: Sequence[Job], parallel: bool, log: Log) -> list[dict[str, Any]]:
    return train_parallel(jobs, log) if parallel else train_sequential(jobs, log)


def with_steps(jobs: Sequence[Job], steps: int) -> list[Job]:
    """The jobs with ``train.steps`` replaced (the one setting a resumed run may change)."""
    return [
        Job(j.name, j.config.model_copy(update={"train": j.config.train.model_copy(update={"steps": steps})}), j.out)
        for j in jobs
    ]


def seconds_per_step(jobs: Sequence[Job], parallel: bool) -> float:
    """Wall seconds one more step of every run costs, from the median logged throughput of each run.

    Concurrent runs (``parallel``) cost the slowest one's step time; sequential runs the sum.
    """
    times = []
    for job in jobs:
        lines = [json.loads(line) for line in (job.out / METRICS).read_text().splitlines() if line.strip()]
        rates = [r["images_per_s"] for r in lines if r.get("images_per_s")]
        if not rates:
            raise ValueError(f"{job.out / METRICS} logs no throughput to plan the time budget with")
        times.append(job.config.train.batch_size / statistics.median(rates))
    return max(times) if parallel else sum(times)


def plan_steps(
    jobs: Sequence[Job], runs: Path, budget_s: float, warmup_steps: int, parallel: bool, log: Log
) -> dict[str, Any]:
    """The step count that fits ``budget_s`` seconds of training of all runs (at most the requested one).

    Trains every run to ``warmup_steps`` first, measures the cost of a step (logged throughput)
    and of starting the processes (wall time of the warm-up minus its loop time), and keeps
    5% in reserve. The plan is stored in ``RUNS/plan.json`` and reused by a re-run with the
    same budget and target, so an interrupted benchmark continues to the same step count; with
    another budget it plans again from the step the runs have reached.
    """
    target = jobs[0].config.train.steps
    path = runs / PLAN
    previous = json.loads(path.read_text()) if path.is_file() else {}
    if previous.get("requested_steps") == target and previous.get("budget_s") == budget_s:
        log(f"time budget: reusing {path}: {previous['steps']} steps")
        return previous
    began = time.perf_counter()
    warmup = min(warmup_steps, target)
    records = train_all(with_steps(jobs, warmup), parallel, log)
    wall = time.perf_counter() - began
    loops = [r["loop_seconds"] for r in records]
    if records:
        startup = max(0.0, wall - (max(loops) if parallel else sum(loops)))
    else:  # nothing left to warm up (a re-run): the start-up measured last time
        startup = previous.get("startup_s", 0.0)
    per_step = seconds_per_step(jobs, parallel)
    done = min(checkpoint_step(job.out) or 0 for job in jobs)  # >= warmup, more when a resumed run went further
    left = budget_s - wall - startup
    steps = max(done, min(target, done + int(0.95 * left / per_step)))
    plan = {
        "requested_steps": target,
        "steps": steps,
        "budget_s": budget_s,
        "warmup_steps": warmup,
        "warmup_wall_s": wall,
        "startup_s": startup,
        "seconds_per_step": per_step,
        "parallel": parallel,
        "capped": steps < target,
    }
    runs.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan, indent=2) + "\n")
    log(
        f"time budget {budget_s:.0f} s: a step of all runs costs {per_step * 1e3:.1f} ms, start-up {startup:.0f} s "
        f"-> {steps} steps" + (f" (of the {target} requested)" if steps < target else "")
    )
    return plan
