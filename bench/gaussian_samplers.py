"""Fréchet distance to the truth, by sampler and step count, with the exact Gaussian denoiser.

Data ``x_0 ~ N(m, S)`` on small images, for which ``E[x_0 | x_t]`` is exact for any linear
``C_t`` (``softdiff.score.GaussianData``). ``x_1`` is drawn from the exact marginal
``q_1``, so the numbers measure the samplers alone; ``floor`` is the distance that ``n``
exact samples of ``N(m, S)`` have from the truth (finite-sample bias).

    PYTHONPATH=$PWD python bench/gaussian_samplers.py [--n 4000 --size 6]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from softdiff.corrupt import CorruptionProcess, GaussianBlur, GeometricNoise
from softdiff.samplers import get, names, nfe, uniform_grid
from softdiff.score import GaussianData
from softdiff.stats import frechet_distance, moments

RESULTS = Path(__file__).parent / "results" / "gaussian_samplers.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="samples per cell")
    parser.add_argument("--size", type=int, default=6, help="image side (1 channel)")
    parser.add_argument("--steps", default="5,10,20,50,100")
    parser.add_argument("--blur-max", type=float, default=3.0, help="blur width at t=1 in pixels")
    parser.add_argument("--s-min", type=float, default=0.01)
    parser.add_argument("--s-max", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention

    shape = (1, args.size, args.size)
    data = GaussianData.random(shape, torch.Generator().manual_seed(0))
    process = CorruptionProcess(GaussianBlur(0.01, args.blur_max), GeometricNoise(args.s_min, args.s_max))
    _, mean1, cov1 = data.marginal(process, 1.0)
    z = torch.randn(args.n, data.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x1 = (mean1 + z @ torch.linalg.cholesky(cov1).T).reshape(args.n, *shape)
    denoiser = data.denoiser(process)
    floor = frechet_distance(*moments(data.sample(args.n, torch.Generator().manual_seed(2))), data.mean, data.cov)
    truth_trace = float(data.cov.trace())

    step_counts = [int(s) for s in args.steps.split(",")]
    cells = []
    for name in names():
        for steps in step_counts:
            out = get(name)(denoiser, process, x1, uniform_grid(steps), generator=torch.Generator().manual_seed(3))
            mean, cov = moments(out)
            cells.append(
                {
                    "sampler": name,
                    "steps": steps,
                    "nfe": nfe(name, steps),
                    "frechet": frechet_distance(mean, cov, data.mean, data.cov),
                    "trace_ratio": float(cov.trace()) / truth_trace,
                }
            )

    table = Table(title=f"Fréchet distance to N(m, S) ({args.n} samples, 1x{args.size}x{args.size}, floor {floor:.4f})")
    table.add_column("sampler")
    for steps in step_counts:
        table.add_column(f"{steps} steps", justify="right")
    for name in names():
        row = [c for c in cells if c["sampler"] == name]
        table.add_row(name, *(f"{c['frechet']:.4f} ({c['trace_ratio']:.2f})" for c in row))
    console = Console()
    console.print(table)
    console.print("in brackets: trace of the sample covariance / trace of S (1 = right total variance)")
    result = {
        "benchmark": "gaussian_samplers",
        "n": args.n,
        "shape": list(shape),
        "process": {"blur": [0.01, args.blur_max], "noise": [args.s_min, args.s_max]},
        "floor": floor,
        "truth_trace": truth_trace,
        "cells": cells,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
