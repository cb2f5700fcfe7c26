"""The prior at t = 1: one Gaussian against a Gaussian mixture, on the same trained networks.

What it measures: for each run, the prior is refitted exactly as the trainer fits it (the
run's ``data.prior_images`` training images, drawn with the run's seed; rank
``data.prior_rank``) once per ``--mixtures`` value (1: one Gaussian, what runs before the
mixture prior store); the network is untouched. Each (prior, sampler, steps) cell draws
``-n`` images at each of ``--steps`` network calls, seed 0, and scores FID/KID
against the 10,000 test images with the domain features. An "oracle" row (``--oracle``)
starts from ``C_1 x0 + s_1 eta`` of real held-out training images: how good a prior can be.

    PYTHONPATH=$PWD python bench/quality/prior_eval.py /work/runs/exp/x0-res /work/runs/exp/r-ema05 --out OUT.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from bench.quality._eval_common import RESULTS, console, write
from softdiff.data import load_dataset
from softdiff.eval import evaluate_samples
from softdiff.imageio import save_grid
from softdiff.samplers import fit_prior, generate
from softdiff.seeding import derive_seed
from softdiff.train import load_run


class _RealBlurred:
    """``x_1 = C_1 x0 + s_1 eta`` for real images ``x0`` (one per sample, in order): the best any prior can do."""

    def __init__(self, process: Any, images: torch.Tensor, shape: tuple[int, int, int], noise: float) -> None:
        with torch.no_grad():
            self.y = torch.cat([process.C(chunk, 1.0) for chunk in images.split(1000)])
        self.shape, self.noise, self.latent_dim, self.next = shape, noise, 1, 0

    def sample_from(self, z: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        batch = self.y[self.next : self.next + len(eta)].to(eta)
        self.next += len(eta)
        return batch + self.noise * eta


def evaluate_run(path: str, args: argparse.Namespace, test: Any, train: Any) -> list[dict[str, Any]]:
    run = load_run(path)
    dc, seed = run.config.data, run.config.train.seed
    x_prior = train.subset(dc.prior_images, seed=derive_seed(seed, "prior")).batch(slice(None))
    priors: dict[str, Any] = {}
    for k in args.mixtures:
        priors[f"mixture {k}" if k > 1 else "gaussian"] = fit_prior(
            run.process, x_prior, dc.prior_rank, k, derive_seed(seed, "prior-fit")
        )
    if args.oracle:
        held_out = train.subset(args.n, seed=12345).batch(slice(None))
        priors["oracle"] = _RealBlurred(run.process, held_out, run.prior.shape, run.prior.noise)
    rows = []
    cells = [(name, sampler, steps) for name in priors for sampler in args.samplers.split(",") for steps in args.steps]
    for name, sampler, steps in cells:
        prior = priors[name]
        if isinstance(prior, _RealBlurred):
            prior.next = 0
        start = time.perf_counter()
        images = generate(run.denoiser, run.process, prior, args.n, sampler=sampler, steps=steps, seed=0)
        scores = evaluate_samples(images, test, features="fashion", seed=0)
        if args.grids is not None:  # the first 32 images of the cell, to look at
            save_grid(images[:32], args.grids / f"{Path(path).name}-{name.replace(' ', '')}-{sampler}-{steps}.png", 8)
        rows.append({
            "run": path, "checkpoint_step": run.step, "train_seed": seed, "prior": name, "sampler": sampler,
            "steps": steps, "n": args.n, "fid": scores["fid"], "kid_mean": scores["kid_mean"],
            "kid_std": scores["kid_std"], "seconds": time.perf_counter() - start,
        })  # fmt: skip
        console.print(f"{path} {name:12s} {sampler:12s} {steps:3d} FID {scores['fid']:.1f}", highlight=False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--mixtures", type=int, nargs="+", default=[1, 10], help="prior components (1: Gaussian)")
    parser.add_argument("--samplers", default="naive,momentum,euler")
    parser.add_argument("--steps", type=int, nargs="+", default=[20])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--oracle", action="store_true", help="also start from blurred real (held-out train) images")
    parser.add_argument("--grids", type=Path, default=None, help="also write a PNG of each cell's first 32 images here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "prior.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test, train = load_dataset("fashion-mnist", "test"), load_dataset("fashion-mnist", "train")
    rows = [row for path in args.runs for row in evaluate_run(path, args, test, train)]
    out = Table(title=f"FID by prior, n = {args.n}, domain features")
    for column in ("run", "seed", "prior", "NFE", *args.samplers.split(",")):
        out.add_column(column)
    for path in args.runs:
        seed = next(r["train_seed"] for r in rows if r["run"] == path)
        for prior in dict.fromkeys(r["prior"] for r in rows if r["run"] == path):
            for steps in args.steps:
                key = (path, prior, steps)
                fid = {r["sampler"]: r["fid"] for r in rows if (r["run"], r["prior"], r["steps"]) == key}
                row = [f"{fid[s]:.1f}" for s in args.samplers.split(",")]
                out.add_row(path, str(seed), prior, str(steps), *row)
    console.print(out)
    command = shlex.join(["python", "bench/quality/prior_eval.py", *sys.argv[1:]])
    write("prior", {"benchmark": "prior_eval", "command": command, "rows": rows}, args.out, args=args)


if __name__ == "__main__":
    main()
