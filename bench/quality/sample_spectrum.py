"""How a sampler's images differ from the data by frequency: per-band DCT power of samples against real.

Made to answer one question (issue 19, item 5): why a consistent solver's FID on a blur model
gets *worse* from 10 to 50 network calls. For each (sampler, steps) cell it draws ``n`` images
exactly as ``softdiff eval`` does (same seeds, so cells share their prior draws) and reports,
per radial DCT band (``soft_diagnosis.band_index``),

    power_ratio(band) = sum_k Var_samples[DCT_k] / sum_k Var_real[DCT_k]   (1 = the data's)

and how far each sample moves from the same prior draw's sample at the largest step count
(``rms_to_finest``, in pixel units): a solver that converges shows it falling with steps.

    PYTHONPATH=$PWD python bench/quality/sample_spectrum.py --ckpt /work/runs/seeds/a4-s2 \
        --samplers dpmpp_2m_sde,momentum --steps 10,20,50,100 -n 1000 --threads 1
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from torch import Tensor

from bench.quality._eval_common import console, write
from bench.quality.soft_diagnosis import BANDS, band_index
from softdiff.corrupt.dct import dct2
from softdiff.eval import parse_samplers, parse_steps, reference_data
from softdiff.samplers import generate
from softdiff.train import load_run


def band_power(images: Tensor, bands: Tensor) -> list[float]:
    """Summed variance over the images of the DCT coefficients in each band."""
    var = dct2(images.double()).var(0).sum(0)  # (H, W): summed over channels
    return [float(var[bands == b].sum()) for b in range(BANDS)]


def spectrum(images: dict[tuple[str, int], Tensor], real: Tensor) -> list[dict[str, Any]]:
    """One row per cell: power ratio per band and the RMS distance to the finest cell of its sampler."""
    bands = band_index(*real.shape[-2:])
    reference = band_power(real, bands)
    finest = {s: max(k for s2, k in images if s2 == s) for s, _ in images}
    rows = []
    for (sampler, steps), x in images.items():
        power = band_power(x, bands)
        last = images[(sampler, finest[sampler])]
        row: dict[str, Any] = {"sampler": sampler, "steps": steps}
        row.update({f"power_band{b}": p / r for b, (p, r) in enumerate(zip(power, reference, strict=True))})
        row["rms_to_finest"] = float((x - last).double().square().mean().sqrt())
        row["pixel_std"] = float(x.double().std())
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], real_std: float) -> Table:
    out = Table(title=f"sample / real power by DCT band b0 (low) .. b5 (high); real pixel std {real_std:.3f}")
    for name in ("sampler", "steps", *(f"b{b}" for b in range(BANDS)), "to finest", "std"):
        out.add_column(name, justify="right")
    for r in rows:
        bands = (f"{r[f'power_band{b}']:.3f}" for b in range(BANDS))
        out.add_row(r["sampler"], str(r["steps"]), *bands, f"{r['rms_to_finest']:.3f}", f"{r['pixel_std']:.3f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, required=True, help="a run folder")
    parser.add_argument("--samplers", default="dpmpp_2m_sde,dpmpp_2m,euler,momentum")
    parser.add_argument("--steps", default="10,20,50,100")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tag", default=None)
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: the harness path)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = load_run(args.ckpt)
    real = reference_data(run).subset(args.n, seed=args.seed).batch(slice(None))
    images = {}
    for sampler in parse_samplers(args.samplers):
        for steps in parse_steps(args.steps):
            images[(sampler, steps)] = generate(
                run.denoiser, run.process, run.prior, args.n, sampler=sampler, steps=steps, seed=args.seed,
                batch_size=args.batch_size,
            )  # fmt: skip
            console.print(f"{sampler} {steps}: drawn", highlight=False)
    rows = spectrum(images, real)
    real_std = float(real.double().std())
    console.print(table(rows, real_std))
    report = {"checkpoint": str(run.path), "step": run.step, "n": args.n, "real_pixel_std": real_std, "rows": rows}
    write("sample_spectrum", report, args.out, args=args)


if __name__ == "__main__":
    main()
