"""Where the denoiser is wrong: its error by frequency band (or by hidden/visible pixel) and time.

Soft score matching supervises ``C_t (h - x_0)`` only. This measures, for trained runs,
the relative error of the clean estimate ``h = D(x_t, t)`` on test images,

    rel_err(band, t) = E|DCT(h - x_0)|^2 / E|DCT(x_0 - mean)|^2   (over the band's coefficients)

(1 = no better than predicting the mean image; above 1 = worse), next to the operator's
gain in the band, ``E g_k(t)^2``. For pixel masks it splits the pixels into those ``C_t``
shows and those it hides. A band the loss does not see (gain ~ 0) but a sampler reveals at
the next, smaller ``t'`` (gain at ``t'`` > 0) is where unsupervised output enters a sample.

    PYTHONPATH=$PWD python bench/quality/soft_diagnosis.py --ckpt runs/soft --ckpt runs/x0 \
        [--times 0.1,0.3,0.5,0.7,0.9 -n 512 --plot docs/img/soft-diagnosis.png]
    PYTHONPATH=$PWD python bench/quality/soft_diagnosis.py --replot --plot docs/img/soft-diagnosis.png   # redraw only
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from torch import Tensor

from bench.harness.result import read_metrics
from bench.quality._eval_common import console, write
from softdiff.corrupt.dct import dct2, dct_frequencies
from softdiff.data import load_dataset
from softdiff.train import TrainedRun, load_run

BANDS = 6
RESULTS = Path(__file__).parents[1] / "results" / "soft_diagnosis.json"  # the legacy result


def band_index(height: int, width: int, bands: int = BANDS) -> Tensor:
    """``(H, W)`` band of every DCT coefficient: even steps of radial frequency, band 0 holds the DC."""
    radius = dct_frequencies(height, width, torch.device("cpu"), torch.float64).sqrt()
    return (radius / radius.max() * bands).floor().clamp(max=bands - 1).long()


@torch.no_grad()
def diagnose(run: TrainedRun, x0: Tensor, times: list[float], seed: int = 0) -> list[dict[str, Any]]:
    """Relative error of ``D(x_t, t)`` per band (and per shown/hidden pixel for diagonal masks) at each time."""
    g = torch.Generator().manual_seed(seed)
    bands = band_index(*x0.shape[-2:])
    centred = dct2(x0 - x0.mean(0))
    power = torch.stack([centred.square()[..., bands == b].mean() for b in range(BANDS)])
    rows = []
    for t in times:
        tt = torch.full((x0.shape[0],), t)
        x_t = run.process.corrupt(x0, tt, generator=g)
        h = run.denoiser(x_t, tt)
        err = dct2(h - x0).square()
        gains = run.process.dct_gains(tt, x0)
        row: dict[str, Any] = {"t": t, "s_t": float(run.process.s(torch.tensor(t)))}
        for b in range(BANDS):
            row[f"err_band{b}"] = float(err[..., bands == b].mean() / power[b])
            if gains is not None:
                row[f"gain2_band{b}"] = float(gains.square().expand_as(x0)[..., bands == b].mean())
        shown = run.process.C(torch.ones_like(x0[:1]), t)  # for a pixel mask: 1 shown, 0 hidden
        if bool(((shown == 0) | (shown == 1)).all()) and bool((shown == 0).any()):
            pixel_err, pixel_var = (h - x0).square().mean(0), (x0 - x0.mean(0)).square().mean(0)
            for name, where in (("shown", shown[0] == 1), ("hidden", shown[0] == 0)):
                if bool(where.any()):
                    row[f"err_{name}"] = float(pixel_err[where].sum() / pixel_var[where].sum())
        rows.append(row)
    return rows


def table(name: str, rows: list[dict[str, Any]]) -> Table:
    out = Table(title=f"{name}: relative error of D(x_t, t) by DCT band (low -> high), [E g^2]")
    out.add_column("t", justify="right")
    for b in range(BANDS):
        out.add_column(f"band {b}", justify="right")
    extra = [k for k in ("err_shown", "err_hidden") if any(k in r for r in rows)]
    for k in extra:
        out.add_column(k.removeprefix("err_"), justify="right")
    for r in rows:
        cells = []
        for b in range(BANDS):
            gain = f" [{r[f'gain2_band{b}']:.2f}]" if f"gain2_band{b}" in r else ""
            cells.append(f"{r[f'err_band{b}']:.3g}{gain}")
        out.add_row(f"{r['t']:.2f}", *cells, *(f"{r.get(k, math.nan):.3g}" for k in extra))
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    """One panel per t: each run's relative denoiser error by DCT band; titled with the runs' steps and n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    times = sorted({r["t"] for rows in results.values() for r in rows})
    fig, axes = plt.subplots(1, len(times), figsize=(3.2 * len(times), 3.4), sharey=True)
    for ax, t in zip(axes if len(times) > 1 else [axes], times, strict=True):
        for name, rows in results.items():
            row = next(r for r in rows if r["t"] == t)
            ax.semilogy(range(BANDS), [row[f"err_band{b}"] for b in range(BANDS)], marker="o", label=name)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_title(f"t = {t:g}")
        ax.set_xlabel("DCT band (low -> high)")
    axes[0].set_ylabel("relative error of D(x_t, t)")
    axes[-1].legend(fontsize=7)
    steps = ", ".join(sorted({str(r["step"]) for r in report["runs"].values()}))
    fig.suptitle(f"models trained {steps} steps; n={report['n']} test images per t", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, action="append", default=[], help="a run folder (repeatable)")
    parser.add_argument("--name", action="append", default=None, help="a label per --ckpt (default: folder name)")
    parser.add_argument("--times", default="0.1,0.3,0.5,0.7,0.9")
    parser.add_argument("-n", type=int, default=512, help="test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument(
        "--out", type=Path, default=None, help="results JSON (default: bench/results/soft_diagnosis.json)"
    )
    parser.add_argument("--replot", action="store_true", help="only redraw --plot from the results in --out")
    args = parser.parse_args()
    if args.replot:
        plot(read_metrics(args.out or RESULTS), args.plot)
        return
    if not args.ckpt:
        parser.error("give at least one --ckpt (or --replot)")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.name or [p.name for p in args.ckpt]
    if len(names) != len(args.ckpt):
        parser.error("give one --name per --ckpt")
    times = [float(v) for v in args.times.split(",")]
    results, runs = {}, {}
    for name, ckpt in zip(names, args.ckpt, strict=True):
        run = load_run(ckpt)
        data = load_dataset(run.config.data.dataset, "test", run.config.data.data_dir)
        x0 = data.subset(args.n, seed=args.seed).batch(slice(None))
        results[name] = diagnose(run, x0, times, args.seed)
        runs[name] = {"checkpoint": str(run.path), "step": run.step, "objective": run.config.objective.model_dump()}
        console.print(table(name, results[name]))
    report = {"benchmark": "soft_diagnosis", "n": args.n, "runs": runs, "results": results}
    if args.plot:
        plot(report, args.plot)
    write("soft_diagnosis", report, args.out, args=args)


if __name__ == "__main__":
    main()
