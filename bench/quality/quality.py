"""The fair soft-vs-vanilla benchmark: three recipes, one budget, FID/KID against NFE.

What it measures: for each recipe (default: ``soft-blur``, the paper's soft score matching
on the heat blur; ``x0-blur``, x0 regression on the same blur; ``vanilla``, noise-only VE
diffusion), a model trained with exactly the same network, data, optimiser, EMA, batch and
number of training images (``bench/quality/recipes/budget.toml``; the recipe files may set only
``corruption`` and ``objective``), then FID and KID (domain features by default) of
``-n`` samples against the test split, for every sampler at NFE 5/10/20/50, beside the
real-data floor (``n`` real training images scored the same way). Any registered sampler
can be named with ``--samplers``; its step count for an NFE comes from
``softdiff.samplers.nfe`` (the largest step count within the NFE).

Everything resumes: the runs continue from their checkpoints (``softdiff train --resume``
semantics) and finished cells are reused from ``RUN/eval/eval.json``. Outputs: a table per
run and a summary table, ``bench/results/quality.json`` (budget, recipes, every cell, the
command line; rewritten after every stage), the FID-vs-NFE plot and a sample grid per run
(``docs/img/quality-*.png``: the first ``--grid-n`` samples of the run's best cell at
``--grid-nfe``, the very images that cell scored).

    PYTHONPATH=$PWD nohup nice -n 10 python bench/quality/quality.py --threads 1 --parallel \
        > /work/logs/quality.log 2>&1 &                 # 5 epochs each, n = 2000
    PYTHONPATH=$PWD python bench/quality/quality.py --tiny      # smoke test, about a minute
    PYTHONPATH=$PWD python bench/quality/quality.py --replot bench/results/quality.json   # redraw the plot only
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from bench.harness.result import read_metrics
from bench.quality._eval_common import Evaluator, add_eval_arguments, budget, console, write
from bench.quality._quality_runs import (
    Job,
    device_name,
    load_budget,
    load_recipe,
    parse_sets,
    plan_steps,
    run_config,
    segments,
    steps_for_epochs,
    train_all,
    training_images,
    with_steps,
)
from softdiff.eval import parse_samplers, parse_steps, plot_fid_vs_nfe
from softdiff.imageio import save_grid
from softdiff.samplers import generate, nfe
from softdiff.train import RunConfig, load_run

BENCH = Path(__file__).parent
TINY_BUDGET = {  # a smoke test in about a minute on 2 CPU cores; nothing of it is a measurement
    "model.base_channels": 8,
    "model.channel_mults": [1, 2],
    "train.batch_size": 16,
    "train.log_every": 2,
    "train.ckpt_every": 3,
    "optim.warmup": 2,
    "data.prior_images": 64,
    "data.prior_rank": 4,
}
TINY_DEFAULTS = {"steps": 6, "n": 24, "nfe": "2,4", "grid_n": 8, "grid_nfe": 4, "threads": 1, "warmup_steps": 2}
_START = time.perf_counter()


def log(message: str) -> None:
    console.print(f"[{time.perf_counter() - _START:6.0f} s] {message}", markup=False, highlight=False, soft_wrap=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="soft-blur,x0-blur,vanilla", help="names in --recipe-dir, or files")
    parser.add_argument("--recipe-dir", type=Path, default=BENCH / "recipes")
    parser.add_argument("--budget", type=Path, default=BENCH / "recipes" / "budget.toml", help="the shared budget")
    parser.add_argument("--set", action="append", default=[], help="budget override, e.g. train.batch_size=512")
    parser.add_argument("--epochs", type=float, default=5.0, help="training epochs per run")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (instead of --epochs)")
    parser.add_argument("--runs", type=Path, default=Path("/work/bench-runs/quality"), help="folder of the runs")
    parser.add_argument("--parallel", action="store_true", help="train the runs at the same time, one process each")
    parser.add_argument("--time-budget", type=float, default=None, help="seconds for all training (caps the steps)")
    parser.add_argument("--warmup-steps", type=int, default=200, help="steps measured before --time-budget caps")
    parser.add_argument("--train-only", action="store_true", help="stop after training")
    parser.add_argument("--samplers", default="momentum,naive,euler", help="any registered sampler names")
    parser.add_argument("--nfe", default="5,10,20,50", help="network-call budgets")
    parser.add_argument("--grid-n", type=int, default=64, help="samples in each run's grid")
    parser.add_argument("--grid-nfe", type=int, default=20, help="the grid shows the run's best cell at this NFE")
    parser.add_argument("--img-dir", type=Path, default=None, help="plot and grids (default docs/img)")
    parser.add_argument("--tiny", action="store_true", help="smoke test: tiny network, steps, n (not a measurement)")
    parser.add_argument("--replot", type=Path, default=None, help="only redraw --plot from this results JSON")
    add_eval_arguments(parser, n=2000)
    args, _ = parser.parse_known_args(argv)
    if args.tiny:
        parser.set_defaults(**TINY_DEFAULTS, runs=Path("/work/bench-runs/quality-tiny"))
    args = parser.parse_args(argv)
    if args.tiny:  # a smoke test never overwrites the real results
        args.out = args.out or args.runs / "quality.json"
        args.img_dir = args.img_dir or args.runs / "img"
    args.img_dir = args.img_dir or BENCH.parents[1] / "docs" / "img"
    args.plot = args.plot or args.img_dir / "quality-fid-vs-nfe.png"
    return args


def steps_for_nfe(sampler: str, budgets: list[int]) -> list[int]:
    """For each NFE budget, the largest step count whose ``nfe`` fits in it (none if even 1 step does not)."""
    steps = []
    for b in budgets:
        fitting = [k for k in range(1, b + 1) if nfe(sampler, k) <= b]
        if fitting:
            steps.append(max(fitting))
    return sorted(set(steps))


def build_jobs(args: argparse.Namespace) -> tuple[list[Job], dict[str, Any]]:
    """The runs (budget + recipe + steps) and a record of how their budget was chosen."""
    overrides = {**(TINY_BUDGET if args.tiny else {}), "train.device": args.device, "train.threads": args.threads}
    overrides.update(parse_sets(args.set))
    shared = load_budget(args.budget, overrides)
    recipes = [load_recipe(spec.strip(), args.recipe_dir) for spec in args.recipes.split(",") if spec.strip()]
    if len({r.name for r in recipes}) != len(recipes):
        raise ValueError(f"recipe names must differ, got {[r.name for r in recipes]}")
    images = training_images(shared)
    batch = RunConfig.model_validate(shared).train.batch_size
    steps = args.steps if args.steps is not None else steps_for_epochs(args.epochs, images, batch)
    jobs = [Job(r.name, run_config(shared, r, steps), args.runs / r.name) for r in recipes]
    record = {
        "budget_file": str(args.budget),
        "overrides": {k: v for k, v in overrides.items() if v is not None},
        "requested_steps": steps,
        "requested_epochs": args.epochs if args.steps is None else steps * batch / images,
        "batch_size": batch,
        "training_images": images,
        "recipes": {r.name: {"file": str(r.path), **r.sections} for r in recipes},
    }
    return jobs, record


def train_runs(args: argparse.Namespace, jobs: list[Job], record: dict[str, Any]) -> list[Job]:
    """Train (or resume) every run to the planned step count; returns the jobs at that count."""
    plan = None
    if args.time_budget is not None:
        plan = plan_steps(jobs, args.runs, args.time_budget, args.warmup_steps, args.parallel, log)
    steps = plan["steps"] if plan else record["requested_steps"]
    jobs = with_steps(jobs, steps)
    train_all(jobs, args.parallel, log)
    batch, images = record["batch_size"], record["training_images"]
    record.update(
        steps=steps,
        images_per_run=steps * batch,
        epochs=steps * batch / images,
        time_budget_s=args.time_budget,
        plan=plan,
        parallel=args.parallel,
        threads=args.threads,
        device=device_name(args.device),
    )
    return jobs


def describe_runs(jobs: list[Job]) -> tuple[dict[str, Any], list[str]]:
    """Per run: its budget as trained, config, training segments; and the budget keys where runs differ."""
    runs = {}
    for job in jobs:
        run = load_run(job.out)
        parts = segments(job.out)
        runs[job.name] = {
            **budget(run),
            "images_seen": run.step * run.config.train.batch_size,
            "train_seconds": sum(p["seconds"] for p in parts),
            "segments": parts,
            "config": run.config.model_dump(mode="json"),
        }
    same = ("checkpoint_step", "batch_size", "parameters", "images_seen")
    sections = ("data", "model", "optim")
    first = next(iter(runs.values()))
    differ = [k for k in same if any(r[k] != first[k] for r in runs.values())]
    differ += [s for s in sections if any(r["config"][s] != first["config"][s] for r in runs.values())]
    return runs, differ


def run_table(name: str, run: dict[str, Any], cells: dict[str, list[dict[str, Any]]], n: int) -> Table:
    title = f"{name}: FID / KID by NFE (step {run['checkpoint_step']}, {run['images_seen']:,} images, n={n})"
    table = Table(title=title)
    table.add_column("NFE", justify="right")
    for sampler in cells:
        table.add_column(sampler, justify="right")
    by = {s: {c["nfe"]: c for c in results} for s, results in cells.items()}
    for value in sorted({v for m in by.values() for v in m}):
        row = [f"{m[value]['fid']:.2f} / {m[value]['kid_mean']:.3g}" if value in m else "-" for m in by.values()]
        table.add_row(str(value), *row)
    return table


def summary_table(cells: dict[str, dict[str, list[dict[str, Any]]]], floor: dict[str, Any]) -> Table:
    table = Table(title=f"best FID by NFE (sampler); real-data floor {floor['fid']:.2f}")
    table.add_column("NFE", justify="right")
    for name in cells:
        table.add_column(name, justify="right")
    best: dict[str, dict[int, dict[str, Any]]] = {}
    for name, per_sampler in cells.items():
        for c in (c for results in per_sampler.values() for c in results):
            if c["nfe"] not in best.setdefault(name, {}) or c["fid"] < best[name][c["nfe"]]["fid"]:
                best[name][c["nfe"]] = c
    for value in sorted({v for m in best.values() for v in m}):
        row = [f"{m[value]['fid']:.2f} ({m[value]['sampler']})" if value in m else "-" for m in best.values()]
        table.add_row(str(value), *row)
    return table


def plot_quality(report: dict[str, Any], path: Path) -> Path:
    """FID against NFE of every (recipe, sampler), log axes, titled with the shared budget and n."""
    curves = {f"{name} {s}": cells for name, per in report["cells"].items() for s, cells in per.items()}
    b = report["budget"]
    title = f"{b['steps']} steps x batch {b['batch_size']} ({b['epochs']:.2f} epochs) per run"
    return plot_fid_vs_nfe(curves, path, title=title)


def replot(results: Path, path: Path) -> Path:
    """Redraw the plot of a finished results file (``--replot``), without training or sampling."""

    return plot_quality(read_metrics(results), path)


def sample_grid(args: argparse.Namespace, evaluator: Evaluator, name: str, out: Path, cells: list) -> dict:
    """The first ``grid_n`` samples of the run's best cell at the largest NFE <= ``grid_nfe``."""
    within = [c for c in cells if c["nfe"] <= args.grid_nfe] or cells
    top = max(c["nfe"] for c in within)
    cell = min((c for c in within if c["nfe"] == top), key=lambda c: c["fid"])
    run = evaluator.load(out)
    images = generate(
        run.denoiser, run.process, run.prior, args.grid_n, sampler=cell["sampler"], steps=cell["steps"],
        seed=args.seed, batch_size=args.batch_size, device=evaluator.device,
    )  # fmt: skip
    path = save_grid(images, args.img_dir / f"quality-samples-{name}.png", nrow=8, scale=2)
    keys = ("sampler", "steps", "nfe", "fid")
    return {"path": str(path), "n": args.grid_n, "seed": args.seed, **{k: cell[k] for k in keys}}


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=BENCH, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def evaluate(args: argparse.Namespace, jobs: list[Job], report: dict[str, Any]) -> None:
    """Every (run, sampler, NFE) cell, the floor, the tables, the plot and the grids; the report grows as it goes."""
    samplers, budgets = parse_samplers(args.samplers), parse_steps(args.nfe)
    evaluator = Evaluator(args)
    report.update(evaluation={**evaluator.settings(), "samplers": samplers, "nfe": budgets}, cells={})
    for job in jobs:
        run = evaluator.load(job.out)
        report["cells"][job.name] = {s: evaluator.cells(run, s, steps_for_nfe(s, budgets), job.name) for s in samplers}
        write("quality", report, args.out, args=args)
    report["floor"] = evaluator.floor(run)
    for name, cells in report["cells"].items():
        console.print(run_table(name, report["runs"][name], cells, args.n))
    console.print(summary_table(report["cells"], report["floor"]))
    report["plot"] = str(plot_quality(report, args.plot))
    report["grids"] = {}
    for job in jobs:
        cells = [c for per_sampler in report["cells"][job.name].values() for c in per_sampler]
        report["grids"][job.name] = sample_grid(args, evaluator, job.name, job.out, cells)
    report["evaluation"]["load_average_at_end"] = evaluator.settings()["load_average_at_end"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    global _START
    _START = time.perf_counter()
    args = parse_args(argv)
    if args.replot is not None:
        console.print(f"wrote {replot(args.replot, args.plot)}", highlight=False)
        return {}
    if args.threads:
        torch.set_num_threads(args.threads)
    command = shlex.join(["python", "bench/quality/quality.py", *(sys.argv[1:] if argv is None else argv)])
    jobs, record = build_jobs(args)
    parse_samplers(args.samplers), parse_steps(args.nfe)  # bad names fail before hours of training
    log(f"{len(jobs)} runs of {record['requested_steps']} steps x batch {record['batch_size']} in {args.runs}")
    jobs = train_runs(args, jobs, record)
    runs, differ = describe_runs(jobs)
    if differ:
        console.print(f"[yellow]warning:[/] the runs differ in {', '.join(differ)}: not an equal-budget comparison")
    report: dict[str, Any] = {
        "benchmark": "quality",
        "complete": False,
        "command": command,
        "git_commit": git_commit(),
        "tiny": args.tiny,
        "budget": record,
        "budget_differences": differ,
        "runs": runs,
    }
    write("quality", report, args.out, args=args)
    if not args.train_only:
        evaluate(args, jobs, report)
    report["complete"] = True
    report["wall_seconds"] = time.perf_counter() - _START
    write("quality", report, args.out, args=args)
    return report


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the training processes too (train_parallel's finally)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except ValueError as err:
        console.print(f"error: {err}", markup=False, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
