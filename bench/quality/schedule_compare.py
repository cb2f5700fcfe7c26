"""Compare trained runs at the SAME corruption levels, whatever schedule each was trained with.

Training losses of runs with different level tables are not comparable (each averages over
its own mix of corruption strengths). This evaluates every run on held-out images at a
common grid of source times ``u`` of the un-warped process: a run trained with a table
``warp`` sees its own input time ``t = warp^{-1}(u)``. Reported per run: the x0 error
``mean |h - x0|^2`` and the soft loss ``mean |C_u (h - x0)|^2``, averaged over the grid.

    PYTHONPATH=$PWD python bench/quality/schedule_compare.py runs/default runs/selected --images 512 --grid 32
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bench.harness import Result, write_result
from softdiff.data import load_dataset
from softdiff.train import load_run


def own_time(run, u: float) -> float:
    """The run's input time whose (warped) source time is ``u``."""
    warp = run.process.warp
    if warp is None:
        return u
    table = warp.values.numpy()
    return float(np.interp(u, table, np.linspace(0, 1, len(table))))


@torch.no_grad()
def evaluate(path: str, images: torch.Tensor, grid: list[float], seed: int) -> dict[str, object]:
    run = load_run(path)
    base = type(run.process)(run.process.operator, run.process.noise)
    rows = []
    for i, u in enumerate(grid):
        g = torch.Generator().manual_seed(seed + i)  # the same noise for every run
        x_t = base.corrupt(images, u, generator=g)
        h = run.denoiser(x_t, torch.full((len(images),), own_time(run, u)))
        err = h - images
        rows.append({"u": u, "x0_mse": err.square().mean().item(), "soft": base.C(err, u).square().mean().item()})
    return {
        "run": path,
        "step": run.step,
        "levels": run.config.corruption.levels is not None,
        "x0_mse": float(np.mean([r["x0_mse"] for r in rows])),
        "soft": float(np.mean([r["soft"] for r in rows])),
        "per_u": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--grid", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    images = load_dataset("fashion-mnist", "test").subset(args.images, args.seed).batch(slice(None))
    grid = torch.linspace(0, 1, args.grid).tolist()
    results = [evaluate(path, images, grid, args.seed) for path in args.runs]
    print(f"{'run':40s} {'step':>6s} {'levels':>7s} {'x0 MSE':>10s} {'soft loss':>10s}")
    for r in results:
        print(f"{r['run']:40s} {r['step']:6d} {r['levels']!s:>7s} {r['x0_mse']:10.5f} {r['soft']:10.5f}")
    metrics = {"grid": grid, "images": args.images, "results": results}
    write_result(Result.now("quality", "schedule_compare", dict(vars(args)), metrics), args.out)


if __name__ == "__main__":
    main()
