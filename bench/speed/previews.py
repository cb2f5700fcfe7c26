"""What the preview grids cost: the main job's recipe trained with and without previews.

Target: at the defaults (``train.preview_every`` = 200, ``train.preview_steps`` = 10), the
previews of the main job (1200 steps, so 6 grids) cost at most 5% of its training loop.

Two short runs of the main job's exact config (library defaults, the selected blur levels,
``--threads 1``), one after the other in this process: A without previews, B with one every
``--every`` steps. Each records the loop's wall time (``elapsed_s`` of the last metrics line)
and this process's CPU time (the work, much less sensitive to a shared machine's load; a
10-step run measures the CPU time of start-up, subtracted to get A's CPU time per step).
The cost of one preview is measured two ways: B's loop minus A's, divided by B's previews;
and the trainer's own timing of each preview (``previews/previews.jsonl``). The main job's
share is then ``6 x preview / (1200 x A's seconds per step)``. With ``--main-run RUN`` the
share in a finished main job (``make run``) is read as well: its previews' seconds over its
loop's.

    PYTHONPATH=$PWD python bench/speed/previews.py [--steps 300 --every 100] [--main-run runs/fashion-blur]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.quality._eval_common import console, loop_seconds, write
from softdiff.schedule import read_levels
from softdiff.train import RunConfig, train
from softdiff.train.previews import PREVIEW_LOG, PREVIEWS

ROOT = Path(__file__).resolve().parents[2]
LEVELS = ROOT / "docs" / "levels-blur-fashion-mnist.json"
MAIN_STEPS = RunConfig().train.steps
DEFAULT_EVERY = RunConfig().train.preview_every
TARGET = 0.05
START_STEPS = 10


def main_job_config(steps: int, every: int | None, threads: int) -> RunConfig:
    """The config of `make run` (every default, the selected levels), shortened to ``steps``."""
    config = RunConfig.model_validate(
        {"corruption": {"levels": list(read_levels(LEVELS).times)}, "train": {"steps": steps, "threads": threads}}
    )
    config.train.preview_every = every
    return config


def timed_run(steps: int, every: int | None, threads: int, folder: Path) -> dict[str, Any]:
    """Train one run; its loop's wall and CPU seconds, and its previews as the trainer logged them."""
    cpu, wall = time.process_time(), time.perf_counter()
    train(main_job_config(steps, every, threads), folder, progress=False)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    log = folder / PREVIEWS / PREVIEW_LOG
    previews = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    return {
        "steps": steps,
        "preview_every": every,
        "previews": len(previews),
        "loop_wall_s": loop_seconds(lines),
        "call_wall_s": wall,  # data loading and the prior fit included
        "call_cpu_s": cpu,
        "preview_wall_s": [p["seconds"] for p in previews],
        "preview_cpu_s": [p.get("cpu_seconds") for p in previews],
        "final_loss": lines[-1]["loss"],
    }


def main_run_share(run: Path) -> dict[str, Any]:
    """The previews' share of a finished main job's training loop."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    previews = [json.loads(line) for line in (run / PREVIEWS / PREVIEW_LOG).read_text().splitlines()]
    seconds = sum(p["seconds"] for p in previews)
    loop = loop_seconds(lines)
    return {
        "run": str(run),
        "steps": lines[-1]["step"],
        "previews": len(previews),
        "preview_wall_s": seconds,
        "loop_wall_s": loop,
        "share": seconds / loop,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps of each short run")
    parser.add_argument("--every", type=int, default=100, help="preview_every of run B")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--main-run", type=Path, default=None, help="a finished main job to read the share from")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/previews.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        start = timed_run(START_STEPS, None, args.threads, Path(tmp) / "start")  # start-up's CPU time, to subtract
        off = timed_run(args.steps, None, args.threads, Path(tmp) / "off")
        on = timed_run(args.steps, args.every, args.threads, Path(tmp) / "on")
    main_previews = MAIN_STEPS // DEFAULT_EVERY + (MAIN_STEPS % DEFAULT_EVERY != 0)
    step_wall = off["loop_wall_s"] / args.steps
    step_cpu = (off["call_cpu_s"] - start["call_cpu_s"]) / (args.steps - START_STEPS)
    per_preview = {
        "wall_s_difference": (on["loop_wall_s"] - off["loop_wall_s"]) / on["previews"],
        "cpu_s_difference": (on["call_cpu_s"] - off["call_cpu_s"]) / on["previews"],
        "wall_s_median_logged": statistics.median(on["preview_wall_s"]),
        "cpu_s_median_logged": statistics.median(on["preview_cpu_s"]),
    }
    projected = {
        "previews": main_previews,
        "share_wall_logged": main_previews * per_preview["wall_s_median_logged"] / (MAIN_STEPS * step_wall),
        "share_wall_difference": main_previews * per_preview["wall_s_difference"] / (MAIN_STEPS * step_wall),
        "share_cpu_logged": main_previews * per_preview["cpu_s_median_logged"] / (MAIN_STEPS * step_cpu),
        "share_cpu_difference": main_previews * per_preview["cpu_s_difference"] / (MAIN_STEPS * step_cpu),
    }
    result: dict[str, Any] = {
        "benchmark": "previews",
        "command": shlex.join(["python", "bench/speed/previews.py", *sys.argv[1:]]),
        "target_share": TARGET,
        "defaults": {"preview_every": DEFAULT_EVERY, "preview_steps": RunConfig().train.preview_steps},
        "main_job_steps": MAIN_STEPS,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "load_average_at_end": list(os.getloadavg()),
        "start_up_run": start,
        "without_previews": off,
        "with_previews": on,
        "per_preview": per_preview,
        "main_job_projected": projected,
    }
    if args.main_run is not None:
        result["main_job_measured"] = main_run_share(args.main_run)
    write("previews", result, args.out, args=args, kind="speed")
    for key, value in projected.items():
        console.print(f"main job, {key}: {value:.4g}", highlight=False)


if __name__ == "__main__":
    main()
