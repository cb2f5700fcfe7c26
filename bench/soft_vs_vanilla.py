"""Soft diffusion (blur + noise) against vanilla noise-only diffusion: FID against NFE.

Both runs should share the network, objective and training budget (``budget`` in the
results records what each was trained with, so a mismatch is visible). The claim under
test (Daras et al., 2023): the soft model reaches a given FID with fewer network calls.
Cells are kept in ``RUN/eval/eval.json`` of each run (shared with ``softdiff eval`` and
``bench/eval_samplers.py``).

    PYTHONPATH=$PWD python bench/soft_vs_vanilla.py --soft runs/blur --vanilla runs/noise \
        [--samplers momentum,naive,euler --steps 5,10,20,50 -n 500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _eval_common import Evaluator, add_eval_arguments, budget, console, nfe_table, write

from softdiff.eval import parse_samplers, parse_steps, plot_fid_vs_nfe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soft", type=Path, required=True, help="run trained with a blur(+noise) corruption")
    parser.add_argument("--vanilla", type=Path, required=True, help="run trained with --corruption noise")
    parser.add_argument("--samplers", default="momentum,naive,euler", help="for the soft run")
    parser.add_argument("--vanilla-samplers", default=None, help="for the vanilla run (default: --samplers)")
    parser.add_argument("--steps", default="5,10,20,50")
    add_eval_arguments(parser)
    args = parser.parse_args()
    soft_samplers = parse_samplers(args.samplers)
    vanilla_samplers = parse_samplers(args.vanilla_samplers or args.samplers)
    steps = parse_steps(args.steps)

    evaluator = Evaluator(args)
    curves, runs = {}, {}
    for role, ckpt, samplers in (("soft", args.soft, soft_samplers), ("vanilla", args.vanilla, vanilla_samplers)):
        run = evaluator.load(ckpt)
        runs[role] = budget(run)
        for sampler in samplers:
            curves[f"{role} ({run.config.corruption.spec}) {sampler}"] = evaluator.cells(run, sampler, steps)
    floor = evaluator.floor(run)
    mismatch = [
        key
        for key in ("checkpoint_step", "batch_size", "objective", "weighting", "parameters")
        if runs["soft"][key] != runs["vanilla"][key]
    ]
    console.print(nfe_table(curves, f"FID by NFE, soft vs vanilla, n={args.n} (real-data floor {floor['fid']:.2f})"))
    if mismatch:
        console.print(f"[yellow]note:[/] the runs differ in {', '.join(mismatch)}")
    if args.plot:
        trained = ", ".join(f"{k} {r['checkpoint_step']} steps x batch {r['batch_size']}" for k, r in runs.items())
        plot_fid_vs_nfe(curves, args.plot, title=f"soft vs vanilla: {trained}")
    write(
        "soft_vs_vanilla",
        {
            "benchmark": "soft_vs_vanilla",
            "runs": runs,
            "budget_differences": mismatch,
            **evaluator.settings(),
            "floor": floor,
            "curves": curves,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
