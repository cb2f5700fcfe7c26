"""``softdiff eval``: FID/KID of a trained run for every (sampler, grid, steps) cell; table, JSON, plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..board import check_tensorboard, open_board
from ..distributed import resolve_device
from ..eval import get_extractor, load_results, parse_grids, parse_samplers, parse_steps, plot_fid_vs_nfe, sweep
from ..eval.extractors import default_features
from ..resources import writable_dir
from ..samplers import GRIDS, names
from ..samplers.generate import check_sample_memory
from ..seeding import MAX_SEED
from ..train import load_run, run_folder
from ..train.autogrids import check_run_grid
from .common import THREADS_HELP, console, set_threads, user_errors

RESULTS_FILE = "eval.json"
PLOT_FILE = "fid_vs_nfe.png"


def results_table(results: list[dict[str, Any]], title: str) -> Table:
    """sampler, grid, steps, NFE, FID, KID (mean +- std), precision, recall, seconds: one row per cell."""
    table = Table(title=title)
    for column in ("sampler", "grid", "steps", "NFE", "FID", "KID", "precision", "recall", "seconds"):
        table.add_column(column, justify="left" if column in ("sampler", "grid") else "right")
    for r in results:
        pr = [f"{r[key]:.3f}" if key in r else "-" for key in ("precision", "recall")]  # older cells have none
        table.add_row(
            r["sampler"], r.get("grid", "uniform"), str(r["steps"]), str(r["nfe"]), f"{r['fid']:.2f}",
            f"{r['kid_mean']:.4f} ± {r['kid_std']:.4f}", *pr, f"{r['seconds']:.1f}",
        )  # fmt: skip
    return table


@user_errors
def evaluate(
    ckpt: Path = typer.Option(..., "--ckpt", help="Run folder (latest checkpoint) or one checkpoint folder."),
    sampler: str = typer.Option(
        "momentum,naive,euler", "--sampler", "-s", help=f"Comma list of: {', '.join(names())}."
    ),
    steps: str = typer.Option("5,10,20,50", "--steps", help="Comma list of sampler step counts."),
    grid: str = typer.Option(
        "uniform", "--grid", help=f"Comma list of time grids: {', '.join(GRIDS)}, NAME:STOP (e.g. edm:levels)."
    ),
    n: int = typer.Option(2000, "-n", help="Generated images per cell (FID is biased upward at small n)."),
    features: str | None = typer.Option(
        None,
        "--features",
        help="fashion (shipped offline net, 28x28 grey) or inception (default: fashion for 28x28 grey runs, "
        "else inception).",
    ),
    inception_weights: Path | None = typer.Option(
        None, "--inception-weights", help="Inception-v3 weights file for --features inception."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=MAX_SEED, help="Sample i depends only on (seed, i); also seeds the KID subsets."
    ),
    batch_size: int = typer.Option(256, "--batch-size", "-b", min=1, help="Images per sampling batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default: RUN/eval)."),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Real-feature cache (default: $SOFTDIFF_CACHE/stats or ~/.cache/softdiff/stats)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    threads: int | None = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    tensorboard: bool = typer.Option(
        False,
        "--tensorboard",
        help="Also log each new cell's FID and KID to the run's TensorBoard folder RUN/tb "
        "(needs pip install 'softdiff[tensorboard]').",
    ),
) -> None:
    """FID/KID (EMA weights) against the test split per (sampler, grid, steps): writes DIR/eval.json and a plot.

    Resumable: cells already in DIR/eval.json for the same checkpoint, step, n, seed,
    features and grid are not recomputed (cells stored without a grid were uniform).
    """
    set_threads(threads)
    if tensorboard:
        check_tensorboard()  # before the checkpoint is read
    samplers, step_list, grids = parse_samplers(sampler), parse_steps(steps), parse_grids(grid)  # fail before loading
    if n < 2:
        raise ValueError(f"-n must be at least 2 images for FID/KID, got {n}")
    out = out if out is not None else Path(ckpt) / "eval"
    target = resolve_device(device)
    if cache_dir is not None and cache_dir.exists() and not cache_dir.is_dir():
        raise ValueError(f"--cache-dir {cache_dir} is a file, not a folder")
    load_results(out / RESULTS_FILE)  # an unreadable results file fails before hours of sampling
    if Path(ckpt).exists():  # a missing checkpoint is reported as such by load_run, not as an output problem
        writable_dir(out, "--out folder")
    run = load_run(ckpt, device=target)
    check_sample_memory(n, run.image_shape)
    for name in grids:  # a grid this run cannot use fails before hours of sampling (auto: checked, not optimised)
        for k in step_list:
            check_run_grid(run, name, k)
    features = features if features is not None else default_features(run.image_shape)  # colour: Inception
    extractor = get_extractor(features, inception_weights=inception_weights)
    console.print(
        f"evaluating {run.path} (step {run.step}, corruption {run.config.corruption.spec}) with {n} images per cell, "
        f"seed {seed}, features: {extractor.description}",
        highlight=False,
    )

    board = open_board(run_folder(run.path)) if tensorboard else None

    def report(result: dict[str, Any], reused: bool) -> None:
        if board is not None and not reused:
            board.fid(result)
        how = "reused from eval.json" if reused else f"{result['seconds']:.1f} s"
        console.print(
            f"{result['sampler']:>12} {result.get('grid', 'uniform'):>9} {result['steps']:>4} steps "
            f"(NFE {result['nfe']:>3}): "
            f"FID {result['fid']:.2f}, KID {result['kid_mean']:.4f} ({how})",
            highlight=False,
            markup=False,
        )

    out.mkdir(parents=True, exist_ok=True)
    try:
        results = sweep(
            run, samplers, step_list, n=n, extractor=extractor.to(target), seed=seed, batch_size=batch_size,
            device=target, cache_dir=cache_dir, results_path=out / RESULTS_FILE, progress=progress, on_result=report,
            grids=grids,
        )  # fmt: skip
    finally:
        if board is not None:
            board.close()
    title = f"{run.config.corruption.label} run, step {run.step}: n={n}, seed {seed}, {extractor.description}"
    console.print(results_table(results, title))
    label = (lambda s, g: s) if len(grids) == 1 else (lambda s, g: f"{s} ({g})")
    curves = {
        label(s, g): [r for r in results if r["sampler"] == s and r["grid"] == g] for s in samplers for g in grids
    }
    trained = f"{run.step} steps x batch {run.config.train.batch_size}"
    plot = plot_fid_vs_nfe(curves, out / PLOT_FILE, title=f"{run.config.corruption.label} model, {trained}")
    console.print(f"wrote {out / RESULTS_FILE} and {plot}", highlight=False)
