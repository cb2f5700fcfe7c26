"""Samplers at (nearly) equal NFE on one checkpoint: FID against the test split.

First-order samplers (momentum, naive, euler) take ``steps = NFE``; Heun takes
``(NFE + 1) // 2`` steps, i.e. ``2 * steps - 1`` network calls (one fewer where NFE is
even). Every cell starts from the same prior draws (sample ``i`` depends only on
``(seed, i)``). Cells are kept in ``RUN/eval/eval.json`` (shared with ``softdiff eval``).

    PYTHONPATH=$PWD python bench/eval_samplers.py --ckpt runs/blur [--nfe 5,10,20,50 -n 500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _eval_common import Evaluator, add_eval_arguments, budget, console, nfe_table, write

from softdiff.eval import parse_samplers, parse_steps, plot_fid_vs_nfe


def steps_for(sampler: str, nfe: int) -> int:
    """The step count whose NFE is ``nfe`` (first order) or the largest odd one below it (Heun)."""
    return max(1, (nfe + 1) // 2) if sampler == "heun" else nfe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, required=True, help="run folder or checkpoint folder")
    parser.add_argument("--samplers", default="momentum,naive,euler,heun")
    parser.add_argument("--nfe", default="5,10,20,50", help="network-call budgets")
    add_eval_arguments(parser)
    args = parser.parse_args()
    samplers, budgets = parse_samplers(args.samplers), parse_steps(args.nfe)

    evaluator = Evaluator(args)
    run = evaluator.load(args.ckpt)
    curves = {s: evaluator.cells(run, s, sorted({steps_for(s, b) for b in budgets})) for s in samplers}
    floor = evaluator.floor(run)
    spec = run.config.corruption.spec
    title = f"FID by NFE: {spec} run, step {run.step}, n={args.n} (real-data floor {floor['fid']:.2f})"
    console.print(nfe_table(curves, title))
    if args.plot:
        plot_fid_vs_nfe(curves, args.plot, title=f"{run.config.corruption.spec} model, step {run.step}, n={args.n}")
    write(
        "eval_samplers",
        {"benchmark": "eval_samplers", "run": budget(run), **evaluator.settings(), "floor": floor, "curves": curves},
        args.out,
    )


if __name__ == "__main__":
    main()
