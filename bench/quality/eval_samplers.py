"""Samplers and time grids at (nearly) equal NFE on one checkpoint: FID against the test split.

Each sampler takes the most steps whose network-call count (``softdiff.samplers.nfe``)
fits the budget: ``steps = NFE`` for the one-call-per-step samplers (momentum, naive,
euler, dpmpp_*), ``(NFE + 1) // 2`` for Heun. Every cell starts from the same prior draws
(sample ``i`` depends only on ``(seed, i)``). Cells are kept in ``RUN/eval/eval.json``
(shared with ``softdiff eval``) unless ``--cells`` names another file.

    PYTHONPATH=$PWD python bench/quality/eval_samplers.py --ckpt runs/blur [--nfe 5,10,20,50 -n 500]
    PYTHONPATH=$PWD python bench/quality/eval_samplers.py --ckpt runs/blur --samplers dpmpp_2m,momentum \
        --grids uniform,edm:levels -n 1000 --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.quality._eval_common import Evaluator, add_eval_arguments, budget, console, write
from softdiff.eval import parse_grids, parse_samplers, parse_steps, plot_fid_vs_nfe
from softdiff.samplers import nfe


def steps_for(sampler: str, budget: int) -> int:
    """The most steps whose network calls fit ``budget`` (at least 1 step)."""
    steps = budget
    while steps > 1 and nfe(sampler, steps) > budget:
        steps -= 1
    return steps


def curve_table(curves: dict[str, list[dict[str, Any]]], title: str) -> Table:
    """FID by curve (rows) and NFE (columns); '-' where a curve has no cell at that NFE."""
    nfes = sorted({r["nfe"] for results in curves.values() for r in results})
    table = Table(title=title)
    table.add_column("sampler (grid)")
    for value in nfes:
        table.add_column(f"NFE {value}", justify="right")
    for label, results in curves.items():
        fid = {r["nfe"]: r["fid"] for r in results}
        table.add_row(label, *(f"{fid[v]:.2f}" if v in fid else "-" for v in nfes))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, required=True, help="run folder or checkpoint folder")
    parser.add_argument("--samplers", default="momentum,naive,euler,heun,dpmpp_2m,dpmpp_3m,dpmpp_2m_sde")
    parser.add_argument("--grids", default="uniform", help="comma list of time grids (softdiff.samplers.time_grid)")
    parser.add_argument("--nfe", default="5,10,20,50", help="network-call budgets")
    add_eval_arguments(parser)
    args = parser.parse_args()
    samplers, grids, budgets = parse_samplers(args.samplers), parse_grids(args.grids), parse_steps(args.nfe)

    evaluator = Evaluator(args)
    run = evaluator.load(args.ckpt)
    label = (lambda s, g: s) if len(grids) == 1 else (lambda s, g: f"{s} ({g})")
    curves = {
        label(s, g): evaluator.cells(run, s, sorted({steps_for(s, b) for b in budgets}), grid=g)
        for s in samplers
        for g in grids
    }
    floor = evaluator.floor(run)
    spec = run.config.corruption.spec
    title = f"FID by NFE: {spec} run, step {run.step}, n={args.n} (real-data floor {floor['fid']:.2f})"
    console.print(curve_table(curves, title))
    if args.plot:
        trained = f"{run.step} steps x batch {run.config.train.batch_size}"
        plot_fid_vs_nfe(curves, args.plot, title=f"{run.config.corruption.spec} model, {trained}")
    write(
        "eval_samplers",
        {
            "benchmark": "eval_samplers",
            "command": " ".join(sys.argv),
            "run": budget(run),
            **evaluator.settings(),
            "floor": floor,
            "curves": curves,
        },
        args.out,
        args=args,
    )


if __name__ == "__main__":
    main()
