"""Class-conditional sampling with the run's prior at t = 1 against a prior fitted per class.

Why: with blur and little noise, ``x_1 = C_1 x0 + s_1 eta`` still holds the blurred shape of
``x0`` (a trouser's blob is not a bag's), so the prior draw already decides much of the
class, and the denoiser, whose ``C_t x0_hat`` must agree with ``x_t``, cannot move far from
it. The run's prior is fitted on all classes. This benchmark refits the prior exactly as
the trainer fits it (rank ``data.prior_rank``, ``data.prior_mixtures`` components, up to
``data.prior_images`` images) on the training images of each class alone, draws ``n / K``
samples of class ``k`` from class ``k``'s prior, and scores FID/KID (all classes, domain
features, test split) and the Fashion-MNIST classifier's accuracy per class, at each
guidance weight. Sample ``i`` of the run depends only on ``(seed, i)``, as in ``softdiff eval``.

    PYTHONPATH=$PWD python3 -m bench.quality.cond_prior /work/runs/cond --guidance 0,1,2,4 -n 1000 \\
        --sampler naive --steps 20 --threads 1 --grid-dir docs/img
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.harness import Result, write_result
from softdiff.conditioning import Guided, guided_calls
from softdiff.data import load_dataset
from softdiff.eval import evaluate_samples, get_extractor, load_feature_net, reference_data
from softdiff.eval.guidance import class_accuracy, per_class_labels, real_class_accuracy
from softdiff.imageio import save_grid
from softdiff.samplers import fit_prior, generate, nfe
from softdiff.seeding import derive_seed
from softdiff.train import load_run


def class_priors(run: Any) -> list[Any]:
    """The run's prior refitted on each class's training images (the trainer's settings and seed)."""
    d = run.config.data
    data = load_dataset(d.dataset, "train", d.data_dir, image_size=d.image_size, channels=d.channels)
    assert data.labels is not None
    priors = []
    for k in range(len(run.classes)):
        images = data.images[data.labels == k]
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(derive_seed(0, "prior", k)))
        x0 = images[pick[: d.prior_images]].float().div(127.5).sub(1)
        priors.append(fit_prior(run.process, x0, d.prior_rank, d.prior_mixtures, derive_seed(0, "prior-fit", k)))
    return priors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--guidance", default="0,1,2,4")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--sampler", default="naive")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--grid-dir", type=Path, default=None, help="write one grid per weight (8 per class) here")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run)
    weights = [float(w) for w in args.guidance.split(",")]
    labels = per_class_labels(run.classes, args.n)
    per = args.n // len(run.classes)
    started = time.perf_counter()
    priors = class_priors(run)
    fit_seconds = time.perf_counter() - started
    extractor, classifier = get_extractor("fashion"), load_feature_net()
    real = reference_data(run)
    metrics: dict[str, Any] = {"real_class_accuracy": real_class_accuracy(classifier, real), "cells": []}
    for w in weights:
        start = time.perf_counter()
        parts = []
        for k, prior in enumerate(priors):
            rows = labels[k * per : (k + 1) * per]
            parts.append(
                generate(
                    Guided(run.denoiser, w),
                    run.process,
                    prior,
                    per,
                    sampler=args.sampler,
                    steps=args.steps,
                    seed=args.seed,
                    offset=k * per,
                    cond=rows,
                )  # fmt: skip
            )
        images = torch.cat(parts)
        scores = evaluate_samples(images, real, features=extractor, seed=args.seed)
        accuracy = class_accuracy(classifier, images, labels, len(run.classes))
        cell = {
            "prior": "per-class",
            "guidance": w,
            "nfe": nfe(args.sampler, args.steps) * guided_calls(w),
            "fid": scores["fid"],
            "kid_mean": scores["kid_mean"],
            "accuracy": sum(accuracy) / len(accuracy),
            "class_accuracy": accuracy,
            "seconds": time.perf_counter() - start,
        }
        metrics["cells"].append(cell)
        print(f"w={w:g}: FID {cell['fid']:.2f}, accuracy {cell['accuracy']:.3f} ({cell['seconds']:.0f} s)", flush=True)
        if args.grid_dir is not None:
            rows8 = torch.cat([images[k * per : k * per + 8] for k in range(len(run.classes))])
            save_grid(rows8, args.grid_dir / f"conditional-w{w:g}.png", nrow=8, scale=2)
    parameters = {
        "run": str(args.run),
        "checkpoint_step": run.step,
        "n": args.n,
        "sampler": args.sampler,
        "steps": args.steps,
        "seed": args.seed,
        "threads": args.threads,
        "prior_fit_seconds": fit_seconds,
        "features": extractor.description,
        "command": shlex.join([sys.executable, "-m", "bench.quality.cond_prior", *sys.argv[1:]]),
    }
    path = write_result(Result.now("quality", "cond_prior", parameters, metrics), args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
