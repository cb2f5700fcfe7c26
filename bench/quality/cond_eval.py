"""``softdiff eval`` on a class-conditional run, recorded as a harness result: FID/KID and accuracy against guidance.

Runs the CLI (so the numbers are exactly what a user gets), then stores its guidance.json
(every cell, the real test images' per-class accuracy) with the command that made it.

    PYTHONPATH=$PWD python3 -m bench.quality.cond_eval /work/runs/cond2 --sampler naive,dpmpp_2m_sde --steps 20 \\
        -n 1000 --guidance 0,1,2,4 --threads 1 --tag class-prior

``--unconditional`` also samples the run without labels (the null class, the shared prior)
with each sampler at each step count, the same n, seed and features, and stores those
cells' FID/KID/precision/recall under ``metrics.unconditional`` (what "FID at W = 0 of a
conditional run" is compared with the unconditional main job on).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from bench.harness import Result, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--sampler", default="naive,dpmpp_2m_sde")
    parser.add_argument("--steps", default="20")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--guidance", default="0,1,2,4")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (not 0: into RUN/eval-seedN)")
    parser.add_argument("--tag", default=None)
    parser.add_argument("--unconditional", action="store_true", help="also score samples drawn without labels")
    args = parser.parse_args()
    out = args.run / ("eval" if args.seed == 0 else f"eval-seed{args.seed}")
    command = [sys.executable, "-m", "softdiff", "eval", "--ckpt", str(args.run), "--sampler", args.sampler]
    command += ["--steps", args.steps, "-n", str(args.n), "--guidance", args.guidance, "--threads", str(args.threads)]
    command += ["--seed", str(args.seed), "--no-progress", "--out", str(out)]
    subprocess.run(command, check=True)
    record = json.loads((out / "guidance.json").read_text())
    if args.unconditional:
        record["unconditional"] = _unconditional(args)
    parameters = {"run": str(args.run), "eval_command": shlex.join(command), "n": args.n, "threads": args.threads}
    parameters["seed"] = args.seed
    path = write_result(Result.now("quality", "cond_eval", parameters, record, tag=args.tag), None)
    print(f"wrote {path}")


def _unconditional(args: argparse.Namespace) -> dict[str, dict]:
    """Each (sampler, steps) cell sampled with no class (``sweep`` without guidance), keyed ``SAMPLER/STEPS``."""
    import torch

    from softdiff.eval import get_extractor, parse_samplers, parse_steps, sweep
    from softdiff.train import load_run

    torch.set_num_threads(args.threads)
    run = load_run(args.run)
    cells = sweep(
        run, parse_samplers(args.sampler), parse_steps(args.steps), n=args.n, extractor=get_extractor(), seed=args.seed
    )
    keys = ("fid", "kid_mean", "precision", "recall", "nfe", "checkpoint_step")
    return {f"{c['sampler']}/{c['steps']}": {k: c[k] for k in keys if k in c} for c in cells}


if __name__ == "__main__":
    main()
