"""``softdiff eval``: FID/KID of a trained run for every (sampler, grid, steps) cell; table, JSON, plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ..board import check_tensorboard, open_board
from ..conditioning import check_guidance
from ..distributed import resolve_device
from ..eval import (
    get_extractor,
    load_results,
    parse_grids,
    parse_samplers,
    parse_steps,
    plot_fid_vs_nfe,
    reference_data,
    sweep,
)
from ..eval.extractors import default_features
from ..eval.features import load_feature_net
from ..eval.guidance import per_class_labels, plot_guidance, real_class_accuracy
from ..imageio import atomic_write_bytes
from ..resources import writable_dir
from ..samplers import GRIDS, names
from ..samplers.generate import check_sample_memory
from ..seeding import MAX_SEED
from ..train import load_run, run_folder
from ..train.autogrids import check_run_grid
from .common import SAMPLING_PLUGIN_HELP, THREADS_HELP, console, import_named_plugins, set_threads, user_errors

RESULTS_FILE = "eval.json"
PLOT_FILE = "fid_vs_nfe.png"
GUIDANCE_FILE = "guidance.json"
GUIDANCE_PLOT = "guidance.png"
GUIDANCE_WEIGHTS = "0,1,2,4"  # a class-conditional run's sweep: unconditional, conditional, two guided weights


def parse_guidance(text: str) -> list[float]:
    """``"0,1,2,4"`` -> guidance weights, each finite and >= 0."""
    weights = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"bad guidance list {text!r}: {part!r} is not a number; e.g. --guidance 0,1,2,4") from None
        weights.append(check_guidance(value))
    if not weights:
        raise ValueError(f"no guidance weight given in {text!r}; e.g. --guidance 0,1,2,4")
    return list(dict.fromkeys(weights))


def guidance_table(results: list[dict[str, Any]], classes: list[str], real: list[float] | None, title: str) -> Table:
    """One row per (sampler, steps, w): NFE, FID, mean and per-class accuracy (columns: class indices), and
    the real test images' accuracy last. KID and the rest are in guidance.json."""
    table = Table(title=title, caption="classes: " + ", ".join(f"{i}={name}" for i, name in enumerate(classes)))
    for column in ("sampler", "steps", "w", "NFE", "FID", "acc", *map(str, range(len(classes)))):
        table.add_column(column, justify="left" if column == "sampler" else "right", no_wrap=True)
    for r in results:
        per_class = [f"{a:.2f}" for a in r["class_accuracy"]] if "class_accuracy" in r else ["-"] * len(classes)
        accuracy = f"{r['accuracy']:.3f}" if "accuracy" in r else "-"
        table.add_row(
            r["sampler"], str(r["steps"]), f"{r['guidance']:g}", str(r["nfe"]), f"{r['fid']:.2f}", accuracy,
            *per_class,
        )  # fmt: skip
    if real is not None:
        table.add_row("real", "", "", "", "", f"{sum(real) / len(real):.3f}", *[f"{a:.2f}" for a in real])
    return table


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
        "uniform",
        "--grid",
        help=f"Comma list of time grids: {', '.join(GRIDS)}, NAME:STOP (e.g. edm:levels), NAME:key=value "
        "(e.g. edm:rho=5).",
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
    guidance: str | None = typer.Option(
        None,
        "--guidance",
        help=f"Class-conditional runs: comma list of guidance weights w, each cell sampled class by class at each "
        f"(-n / classes images per class), with the Fashion-MNIST classifier's per-class accuracy (default: "
        f"{GUIDANCE_WEIGHTS}).",
    ),
    tensorboard: bool = typer.Option(
        False,
        "--tensorboard",
        help="Also log each new cell's FID and KID to the run's TensorBoard folder RUN/tb "
        "(needs pip install 'softdiff[tensorboard]').",
    ),
    plugins: list[str] = typer.Option([], "--plugin", help=SAMPLING_PLUGIN_HELP),
) -> None:
    """FID/KID (EMA weights) against the test split per (sampler, grid, steps): writes DIR/eval.json and a plot.

    Resumable: cells already in DIR/eval.json for the same checkpoint, step, n, seed,
    features and grid are not recomputed (cells stored without a grid were uniform).
    """
    set_threads(threads)
    import_named_plugins(plugins)
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
    weights = parse_guidance(guidance) if guidance is not None else None
    run = load_run(ckpt, device=target)
    if weights is not None and run.classes is None:
        raise ValueError(f"{ckpt} is unconditional (trained without --cond class): --guidance needs a conditional run")
    if run.classes is not None:
        weights = weights if weights is not None else parse_guidance(GUIDANCE_WEIGHTS)
        per_class_labels(run.classes, n)  # -n must split evenly between the classes
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
    classifier = real_accuracy = None
    if weights is not None and run.config.data.dataset == "fashion-mnist":
        classifier = load_feature_net().to(target)
        real_accuracy = real_class_accuracy(classifier, reference_data(run), target)
    elif weights is not None:
        console.print("no per-class accuracy: the package's classifier is for Fashion-MNIST", highlight=False)

    def report(result: dict[str, Any], reused: bool) -> None:
        if board is not None and not reused:
            board.fid(result)
        how = "reused from eval.json" if reused else f"{result['seconds']:.1f} s"
        guided = f" w={result['guidance']:g}" if "guidance" in result else ""
        accuracy = f", accuracy {result['accuracy']:.3f}" if "accuracy" in result else ""
        console.print(
            f"{result['sampler']:>12} {result.get('grid', 'uniform'):>9} {result['steps']:>4} steps{guided} "
            f"(NFE {result['nfe']:>3}): "
            f"FID {result['fid']:.2f}, KID {result['kid_mean']:.4f}{accuracy} ({how})",
            highlight=False,
            markup=False,
        )

    out.mkdir(parents=True, exist_ok=True)
    try:
        results = sweep(
            run, samplers, step_list, n=n, extractor=extractor.to(target), seed=seed, batch_size=batch_size,
            device=target, cache_dir=cache_dir, results_path=out / RESULTS_FILE, progress=progress, on_result=report,
            grids=grids, guidance=weights, classifier=classifier,
        )  # fmt: skip
    finally:
        if board is not None:
            board.close()
    title = f"{run.config.corruption.label} run, step {run.step}: n={n}, seed {seed}, {extractor.description}"
    if weights is not None and run.classes is not None:
        _write_guidance(out, results, run.classes, real_accuracy, title)
        return
    console.print(results_table(results, title))
    label = (lambda s, g: s) if len(grids) == 1 else (lambda s, g: f"{s} ({g})")
    curves = {
        label(s, g): [r for r in results if r["sampler"] == s and r["grid"] == g] for s in samplers for g in grids
    }
    trained = f"{run.step} steps x batch {run.config.train.batch_size}"
    plot = plot_fid_vs_nfe(curves, out / PLOT_FILE, title=f"{run.config.corruption.label} model, {trained}")
    console.print(f"wrote {out / RESULTS_FILE} and {plot}", highlight=False)


def _write_guidance(
    out: Path, results: list[dict[str, Any]], classes: list[str], real: list[float] | None, title: str
) -> None:
    """The guidance table on the console, DIR/guidance.json (with the real images' accuracy) and DIR/guidance.png."""
    console.print(guidance_table(results, classes, real, title))
    record = {"classes": classes, "real_class_accuracy": real, "results": results}
    atomic_write_bytes(out / GUIDANCE_FILE, (json.dumps(record, indent=2) + "\n").encode())
    plot = plot_guidance(results, real, out / GUIDANCE_PLOT, title=title.split(":")[0])
    console.print(f"wrote {out / RESULTS_FILE}, {out / GUIDANCE_FILE} and {plot}", highlight=False)
