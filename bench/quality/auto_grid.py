"""``--grid auto`` on exact Gaussian cases it was not tuned on: Fréchet distance against momentum on the uniform grid.

For each case, data ``x_0 ~ N(m, S)`` with a *dense* random covariance
(``GaussianData.random``) and a process; the auto grid is optimised on the DCT-diagonal
part of ``S`` only (``GaussianFit.from_covariance``, what a run stores), then every
sampler runs with the *exact* dense denoiser ``E[x_0 | x_t]`` from draws of the exact
``q_1``. The issue's bar: a sampler on ``auto`` at 10 (20) NFE matches momentum on the
uniform grid at 50 (100) NFE. ``floor`` is the Fréchet distance of ``n`` exact samples.

    PYTHONPATH=$PWD python bench/quality/auto_grid.py [--n 4000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bench.harness import Result, write_result
from softdiff.corrupt import CorruptionProcess, GaussianBlur, GeometricNoise, Identity, Mask
from softdiff.samplers import get, nfe, time_grid
from softdiff.samplers.autogrid import GaussianFit, auto_grid
from softdiff.score import GaussianData
from softdiff.stats import frechet_distance, moments

SAMPLERS = ("dpmpp_2m_sde", "dpmpp_2m", "dpmpp_3m", "euler")


def cases() -> dict[str, tuple[tuple[int, int, int], int, CorruptionProcess]]:
    """Case name -> (image shape, data seed, process); none of them was used while writing the optimiser."""
    return {
        "blur 8x8, 0.01-5 px, noise 0.02-0.3": (
            (1, 8, 8), 11, CorruptionProcess(GaussianBlur(0.01, 5.0), GeometricNoise(0.02, 0.3))
        ),
        "blur 6x6 RGB, 0.01-2 px, noise 0.005-0.05": (
            (3, 6, 6), 12, CorruptionProcess(GaussianBlur(0.01, 2.0), GeometricNoise(0.005, 0.05))
        ),
        "vanilla 6x6, noise 0.01-20": ((1, 6, 6), 13, CorruptionProcess(Identity(), GeometricNoise(0.01, 20.0))),
        "mask 6x6, noise 0.01-2": ((1, 6, 6), 14, CorruptionProcess(Mask("pixels"), GeometricNoise(0.01, 2.0))),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="samples per cell")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    console = Console(width=120)
    started = time.perf_counter()
    result = {"benchmark": "auto_grid", "command": " ".join(sys.argv), "n": args.n, "cases": []}
    for label, (shape, seed, process) in cases().items():
        data = GaussianData.random(shape, torch.Generator().manual_seed(seed))
        fit = GaussianFit.from_covariance(data.mean, data.cov, shape)
        _, mean1, cov1 = data.marginal(process, 1.0)
        z = torch.randn(args.n, data.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        x1 = (mean1 + z @ torch.linalg.cholesky(cov1).T).reshape(args.n, *shape)
        denoiser = data.denoiser(process)

        def distance(sampler: str, ts: torch.Tensor, x1=x1, denoiser=denoiser, process=process, data=data) -> float:
            out = get(sampler)(denoiser, process, x1, ts, generator=torch.Generator().manual_seed(3))
            return frechet_distance(*moments(out), data.mean, data.cov)

        floor = frechet_distance(*moments(data.sample(args.n, torch.Generator().manual_seed(2))), data.mean, data.cov)
        momentum = {k: distance("momentum", time_grid("uniform", process, k)) for k in (50, 100)}
        cells = []
        for sampler in SAMPLERS:
            for steps in (10, 20):
                tic = time.perf_counter()
                ts = auto_grid(sampler, process, fit, steps)
                seconds = time.perf_counter() - tic
                cell = {"sampler": sampler, "steps": steps, "nfe": nfe(sampler, steps), "optimise_seconds": seconds}
                cell["auto"] = distance(sampler, ts)
                for name in ("uniform", "edm"):
                    try:
                        cell[name] = distance(sampler, time_grid(name, process, steps))
                    except ValueError:
                        cell[name] = None
                cell["grid"] = ts.tolist()
                cells.append(cell)
        table = Table(title=f"{label}: Fréchet distance (n = {args.n}, floor {floor:.4f})")
        for column in ("sampler", "NFE", "auto", "uniform", "edm", "momentum uniform", "met", "optimise s"):
            table.add_column(column, justify="left" if column == "sampler" else "right")
        for cell in cells:
            bar = momentum[50 if cell["steps"] == 10 else 100]
            cell["momentum_uniform"], cell["met"] = bar, cell["auto"] <= bar
            table.add_row(
                cell["sampler"], str(cell["nfe"]), f"{cell['auto']:.4f}",
                *(f"{cell[g]:.4f}" if cell[g] is not None else "-" for g in ("uniform", "edm")),
                f"{bar:.4f} @{50 if cell['steps'] == 10 else 100}", "yes" if cell["met"] else "no",
                f"{cell['optimise_seconds']:.1f}",
            )  # fmt: skip
        console.print(table)
        result["cases"].append({"case": label, "shape": list(shape), "seed": seed, "floor": floor,
                                "momentum_uniform": momentum, "cells": cells})  # fmt: skip
    result["seconds"] = time.perf_counter() - started
    write_result(Result.now("quality", "auto_grid", dict(vars(args)), result), args.out)
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
