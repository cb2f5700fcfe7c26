"""Fréchet distance to the truth by sampler, time grid and NFE, with the exact Gaussian denoiser.

Data ``x_0 ~ N(m, S)`` on small images, for which ``E[x_0 | x_t]`` is exact for any linear
``C_t`` (``softdiff.score.GaussianData``). ``x_1`` is drawn from the exact marginal
``q_1``, so the numbers measure the samplers alone; ``floor`` is the distance that ``n``
exact samples of ``N(m, S)`` have from the truth (finite-sample bias). Each sampler takes
the most steps whose network calls fit the NFE budget (Heun: ``2 steps - 1``).

Grids (``softdiff.samplers.time_grid``): ``uniform``, ``log-noise``, ``edm``, ``levels``
(32 levels chosen by ``select_levels`` from the exact moments, interpolated for other step
counts) and the first three stopped at the first selected level (``NAME:STOP``, the last
step jumps from there to 0). For the deterministic samplers the RMS distance of each
sample to a 2000-step reference solution of the same flow is also recorded, on the grid
``uniform:0.5`` (every run, the reference included, ends with the jump from t = 0.5, so
the distance measures the integration of the flow from 1 to 0.5 alone): its slope against
NFE is the order of convergence.

    PYTHONPATH=$PWD python bench/oracle/gaussian_samplers.py [--n 4000 --size 6 --plot docs/img/gaussian-samplers.png]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bench.harness import Runner
from bench.harness.result import read_metrics
from softdiff.corrupt import CorruptionProcess, GaussianBlur, GeometricNoise
from softdiff.samplers import get, level_grid, names, nfe, time_grid
from softdiff.schedule import DataMoments, select_levels
from softdiff.score import GaussianData
from softdiff.stats import frechet_distance, moments

DETERMINISTIC = ("euler", "heun", "dpmpp_2m", "dpmpp_3m")
MULTISTEP = ("dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde")


def steps_for(sampler: str, budget: int) -> int:
    """The most steps whose network calls fit ``budget``."""
    steps = budget
    while steps > 1 and nfe(sampler, steps) > budget:
        steps -= 1
    return steps


def make_grids(process: CorruptionProcess, levels: list[float]) -> dict[str, object]:
    """Grid label -> function of the step count."""
    stop = f"{levels[1]:.3f}"  # the first selected level above the clean one
    grids: dict[str, object] = {
        name: (lambda k, name=name: time_grid(name, process, k)) for name in ("uniform", "log-noise", "edm")
    }
    grids["levels"] = lambda k: level_grid(levels, k)
    for name in ("uniform", "log-noise", "edm"):
        grids[f"{name}:{stop}"] = lambda k, name=name: time_grid(f"{name}:{stop}", process, k)
    return grids


def plot(result: dict, path: Path) -> Path:
    """Left: Fréchet distance against NFE per sampler on its best grid; right: RMS path error on the uniform grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = result["cells"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    samplers = sorted({c["sampler"] for c in cells})
    colours = {name: plt.get_cmap("tab10")(i) for i, name in enumerate(samplers)}
    for sampler in samplers:
        mine = [c for c in cells if c["sampler"] == sampler]
        best = min({c["grid"] for c in mine}, key=lambda g: sum(math.log(c["frechet"]) for c in mine if c["grid"] == g))
        points = sorted((c["nfe"], c["frechet"]) for c in mine if c["grid"] == best)
        style = "-" if sampler in MULTISTEP else "--"
        left.plot(*zip(*points, strict=True), style, marker="o", color=colours[sampler], label=f"{sampler} ({best})")
        path_points = sorted((p["nfe"], p["path_rms"]) for p in result["paths"] if p["sampler"] == sampler)
        if path_points:
            right.plot(*zip(*path_points, strict=True), style, marker="o", color=colours[sampler], label=sampler)
    left.axhline(result["floor"], color="grey", lw=0.8, ls=":", label=f"floor (n={result['n']})")
    nfes = result["budgets"]
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(nfes, [str(v) for v in nfes])
        ax.minorticks_off()
        ax.set_xlabel("network evaluations (NFE)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for order, anchor in ((1, 0.2), (2, 0.02), (3, 0.002)):  # reference slopes through (10, anchor)
        right.plot([10, 100], [anchor, anchor * 10.0**-order], color="grey", lw=0.8, ls=":")
        right.annotate(f"order {order}", (100, anchor * 10.0**-order), fontsize=7, color="grey")
    left.set_ylabel("Fréchet distance to N(m, S)")
    left.set_title("each sampler on its best grid", fontsize=9)
    right.set_ylabel("RMS distance to the exact flow's sample")
    right.set_title("grid uniform:0.5, deterministic samplers (slope = order)", fontsize=9)
    fig.suptitle(
        f"exact Gaussian bench (exact denoiser, no training): 1x{result['shape'][1]}x{result['shape'][2]}, "
        f"blur 0.01-3 px, noise 0.01-0.1, n={result['n']} samples per cell",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="samples per cell")
    parser.add_argument("--size", type=int, default=6, help="image side (1 channel)")
    parser.add_argument("--nfe", default="5,10,20,50,100", help="network-call budgets")
    parser.add_argument("--samplers", default=",".join(names()))
    parser.add_argument("--blur-max", type=float, default=3.0, help="blur width at t=1 in pixels")
    parser.add_argument("--s-min", type=float, default=0.01)
    parser.add_argument("--s-max", type=float, default=0.1)
    parser.add_argument("--tag", default=None, help="label a second configuration at the same commit")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: bench/results/oracle/gaussian_samplers-COMMIT.json"
    )
    parser.add_argument("--plot", type=Path, default=None, help="also write the log-log plot here (PNG)")
    parser.add_argument("--replot", action="store_true", help="only redraw --plot from the results in --out")
    args = parser.parse_args()
    if args.replot:
        print(f"wrote {plot(read_metrics(args.out), args.plot)}")
        return
    torch.set_num_threads(1)  # tiny matrices: threads only add contention
    started = time.perf_counter()

    shape = (1, args.size, args.size)
    data = GaussianData.random(shape, torch.Generator().manual_seed(0))
    process = CorruptionProcess(GaussianBlur(0.01, args.blur_max), GeometricNoise(args.s_min, args.s_max))
    _, mean1, cov1 = data.marginal(process, 1.0)
    z = torch.randn(args.n, data.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x1 = (mean1 + z @ torch.linalg.cholesky(cov1).T).reshape(args.n, *shape)
    denoiser = data.denoiser(process)
    floor = frechet_distance(*moments(data.sample(args.n, torch.Generator().manual_seed(2))), data.mean, data.cov)
    truth_trace = float(data.cov.trace())
    levels = list(select_levels(process, DataMoments.from_gaussian(data.mean, data.cov, shape), k=32).times)
    grids = make_grids(process, levels)
    path_grid = "uniform:0.5"
    reference = get("dpmpp_3m")(denoiser, process, x1, time_grid(path_grid, process, 2000))

    budgets = [int(b) for b in args.nfe.split(",")]
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    sweep = {k: v for k, v in vars(args).items() if k not in ("out", "plot", "replot", "tag", "samplers", "nfe")}
    runner = Runner("oracle", "gaussian_samplers", sweep, out=args.out, tag=args.tag)  # a rerun skips finished cells

    def cell(name: str, grid: Callable[[int], torch.Tensor], steps: int) -> dict[str, float]:
        out = get(name)(denoiser, process, x1, grid(steps), generator=torch.Generator().manual_seed(3))
        mean, cov = moments(out)
        return {
            "frechet": frechet_distance(mean, cov, data.mean, data.cov),
            "trace_ratio": float(cov.trace()) / truth_trace,
        }

    cells = []
    for name in samplers:
        for label, grid in grids.items():
            for budget in budgets:
                steps = steps_for(name, budget)
                case = {"sampler": name, "grid": label, "steps": steps, "nfe": nfe(name, steps)}
                cells.append(case | runner.run(case, lambda name=name, grid=grid, steps=steps: cell(name, grid, steps)))
    paths = []
    for name in [s for s in samplers if s in DETERMINISTIC]:
        for budget in budgets:
            steps = steps_for(name, budget)
            out = get(name)(denoiser, process, x1, time_grid(path_grid, process, steps))
            rms = float((out - reference).pow(2).mean().sqrt())
            paths.append({"sampler": name, "grid": path_grid, "steps": steps, "nfe": nfe(name, steps), "path_rms": rms})

    console = Console()
    for label in grids:
        table = Table(
            title=f"Fréchet distance, grid {label} ({args.n} samples, 1x{args.size}x{args.size}, floor {floor:.4f})"
        )
        table.add_column("sampler")
        for budget in budgets:
            table.add_column(f"NFE {budget}", justify="right")
        for name in samplers:
            row = [c for c in cells if c["sampler"] == name and c["grid"] == label]
            table.add_row(name, *(f"{c['frechet']:.4f}" for c in row))
        console.print(table)
    verdict = done_when(cells)
    for line in verdict["lines"]:
        console.print(line, highlight=False)
    for name in dict.fromkeys(p["sampler"] for p in paths):
        mine = [p for p in paths if p["sampler"] == name]
        slopes = [
            math.log(a["path_rms"] / b["path_rms"]) / math.log(b["nfe"] / a["nfe"])
            for a, b in zip(mine, mine[1:], strict=False)
        ]
        console.print(
            f"{name}: RMS path error {' '.join(format(p['path_rms'], '.2e') for p in mine)}; slopes "
            f"{' '.join(f'{v:.2f}' for v in slopes)}",
            highlight=False,
        )
    path = runner.save(
        **{
            "n": args.n,
            "shape": list(shape),
            "process": {"blur": [0.01, args.blur_max], "noise": [args.s_min, args.s_max]},
            "levels": levels,
            "floor": floor,
            "truth_trace": truth_trace,
            "seconds": time.perf_counter() - started,
            "budgets": budgets,
            "done_when": verdict["checks"],
            "cells": cells,
            "paths": paths,
        }
    )
    if args.plot:
        print(f"wrote {plot(read_metrics(path), args.plot)}")


def done_when(cells: list[dict]) -> dict:
    """Issue 12's bar: the best new sampler at 10 (20) NFE against momentum at 50 (100) NFE."""

    def best(samplers: tuple[str, ...], budget: int) -> dict | None:
        pool = [c for c in cells if c["sampler"] in samplers and c["nfe"] == budget]
        return min(pool, key=lambda c: c["frechet"]) if pool else None

    checks, lines = [], []
    for new_nfe, old_nfe in ((10, 50), (20, 100)):
        new = best(MULTISTEP, new_nfe)
        for old_grid in ("uniform", "best"):
            pool = [c for c in cells if c["sampler"] == "momentum" and c["nfe"] == old_nfe]
            pool = pool if old_grid == "best" else [c for c in pool if c["grid"] == "uniform"]
            if new is None or not pool:
                continue
            old = min(pool, key=lambda c: c["frechet"])
            met = new["frechet"] <= old["frechet"]
            checks.append({"new": new, "momentum": old, "met": met})
            lines.append(
                f"{new['sampler']} ({new['grid']}) at {new_nfe} NFE: {new['frechet']:.4f} vs momentum "
                f"({old['grid']}) at {old_nfe} NFE: {old['frechet']:.4f} -> {'met' if met else 'NOT met'}"
            )
    return {"checks": checks, "lines": lines}


if __name__ == "__main__":
    main()
