"""Glue shared by the FID benchmarks: load a run, evaluate a grid of cells, describe its budget.

Cells are stored in ``RUN/eval/eval.json`` by default, the file ``softdiff eval`` uses, so
the benchmarks and the CLI reuse each other's finished cells (same checkpoint step, ``n``,
seed and features) and an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from bench.harness import Result, write_result
from softdiff.data import load_dataset
from softdiff.distributed import resolve_device
from softdiff.eval import evaluate_samples, get_extractor, reference_data, sweep
from softdiff.train import TrainedRun, load_run

console = Console()
RESULTS = Path(__file__).parents[1] / "results"  # the legacy files; harness results go to RESULTS/KIND/


def add_eval_arguments(parser: argparse.ArgumentParser, n: int = 500) -> None:
    parser.add_argument("-n", type=int, default=n, help="generated images per cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", default="fashion", help="fashion or inception")
    parser.add_argument("--inception-weights", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="real-feature cache")
    parser.add_argument("--plot", type=Path, default=None, help="also write the FID-vs-NFE plot here (PNG)")
    parser.add_argument("--progress", action="store_true", help="show sampling progress bars")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: bench/results/NAME.json)")
    parser.add_argument("--tag", default=None, help="label a second configuration at the same commit")
    parser.add_argument(
        "--cells", type=Path, default=None, help="cell store to resume from (default: RUN/eval/eval.json)"
    )


class Evaluator:
    """The settings every cell of one benchmark shares (features, n, seed, device)."""

    def __init__(self, args: argparse.Namespace) -> None:
        if args.threads:
            torch.set_num_threads(args.threads)
        self.args = args
        self.device = resolve_device(args.device)
        self.extractor = get_extractor(args.features, inception_weights=args.inception_weights).to(self.device)

    def load(self, ckpt: Path) -> TrainedRun:
        return load_run(ckpt, device=self.device)

    def cells(
        self, run: TrainedRun, sampler: str, steps: list[int], label: str | None = None, grid: str = "uniform"
    ) -> list[dict[str, Any]]:
        """Evaluate (resuming from the cell store, RUN/eval/eval.json by default) and log each cell as it finishes.

        ``label`` names the run in the log lines (default: its corruption spec).
        """

        def log(result: dict[str, Any], reused: bool) -> None:
            how = "reused" if reused else f"{result['seconds']:.0f} s"
            console.print(
                f"{label or run.config.corruption.spec:>6} {result['sampler']:>12} {grid:>16} NFE {result['nfe']:>3}: "
                f"FID {result['fid']:.2f} ({how})",
                highlight=False,
                markup=False,
            )

        a = self.args
        return sweep(
            run, [sampler], steps, n=a.n, extractor=self.extractor, seed=a.seed, batch_size=a.batch_size,
            device=self.device, cache_dir=a.cache_dir, progress=a.progress, on_result=log, grids=[grid],
            results_path=a.cells or run_dir(run) / "eval" / "eval.json",
        )  # fmt: skip

    def floor(self, run: TrainedRun) -> dict[str, Any]:
        """FID/KID of ``n`` real training images against the test split: the small-``n`` bias floor."""
        data = run.config.data
        train = load_dataset(data.dataset, "train", data.data_dir, image_size=data.image_size, channels=data.channels)
        a = self.args
        scores = evaluate_samples(
            train.images[: a.n], reference_data(run), features=self.extractor, cache_dir=a.cache_dir, seed=a.seed,
            device=self.device,
        )  # fmt: skip
        console.print(f"floor: {a.n} real training images score FID {scores['fid']:.2f}", highlight=False)
        return {k: scores[k] for k in ("fid", "kid_mean", "kid_std", "n", "n_real", "features")}

    def settings(self) -> dict[str, Any]:
        a = self.args
        return {
            "n": a.n,
            "seed": a.seed,
            "features": self.extractor.description,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "load_average_at_end": list(os.getloadavg()),
        }


def run_dir(run: TrainedRun) -> Path:
    """The run folder of a loaded checkpoint (``RUN/checkpoints/step-N`` -> ``RUN``)."""
    path = Path(run.path).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else path


def budget(run: TrainedRun) -> dict[str, Any]:
    """What the run was trained with: steps, batch, objective, wall time (from metrics.jsonl)."""
    config = run.config
    metrics = run_dir(run) / "metrics.jsonl"
    lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    return {
        "checkpoint": str(run.path),
        "checkpoint_step": run.step,
        "corruption": config.corruption.spec,
        "objective": config.objective.name,
        "weighting": config.objective.weighting,
        "parameterisation": config.objective.parameterisation,
        "batch_size": config.train.batch_size,
        "base_channels": config.model.base_channels,
        "parameters": sum(p.numel() for p in run.net.parameters()),
        "train_wall_seconds": loop_seconds(lines) if lines else None,
        "final_logged_loss": lines[-1].get("loss") if lines else None,
    }


def loop_seconds(lines: list[dict[str, Any]]) -> float:
    """Training-loop seconds of a run, summed over its segments (``elapsed_s`` restarts on every resume)."""
    total = last = 0.0
    for record in lines:
        elapsed = record.get("elapsed_s")
        if elapsed is None:
            continue
        if elapsed < last:  # a resumed segment starts its clock at 0
            total += last
        last = elapsed
    return total + last


def nfe_table(curves: dict[str, list[dict[str, Any]]], title: str) -> Table:
    """FID by NFE (rows) and curve (columns); '-' where a curve has no cell at that NFE."""
    table = Table(title=title)
    table.add_column("NFE", justify="right")
    for label in curves:
        table.add_column(label, justify="right")
    by_nfe = {label: {r["nfe"]: r["fid"] for r in results} for label, results in curves.items()}
    for value in sorted({v for m in by_nfe.values() for v in m}):
        table.add_row(str(value), *(f"{m[value]:.2f}" if value in m else "-" for m in by_nfe.values()))
    return table


def write(
    name: str,
    result: dict[str, Any],
    out: Path | None = None,
    *,
    kind: str = "quality",
    args: argparse.Namespace | None = None,
) -> Path:
    """``result`` as the metrics of one harness ``Result`` (parameters: the parsed flags)."""
    parameters = dict(vars(args)) if args is not None else {}
    tag = parameters.pop("tag", None)
    return write_result(Result.now(kind, name, parameters, result, tag=tag), out)
