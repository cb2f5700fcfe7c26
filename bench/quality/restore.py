"""Restoration benchmark: operator x method -> PSNR, SSIM, consistency, FID, NFE, seconds per image.

For every operator the first ``-n`` Fashion-MNIST test images are degraded (seeded, per
image) and restored by: the degraded input itself, Tikhonov (lambda tuned on held-out
training images), the Wiener filter (training mean and covariance), level entry (where the
operator is a level of the model's process), ``project``, DPS (step scale tuned on held-out
training images), DDRM (eta 0.85, eta_b 1), DiffPIR (lambda 1, zeta 0.3) and PiGDM (scale 1),
each at ``--steps`` network calls per sample (the NFE budget). Each cell stores its metrics in
the results JSON as soon as it is done (an interrupted run resumes), and the first images'
restorations for the strips. ``--table`` prints the comparison table (methods x operators) of
a results file and ``--plot`` draws its perception-distortion plot (PSNR of the mean vs FID).

    PYTHONPATH=$PWD nice -n 10 python bench/quality/restore.py --ckpt /work/runs/baseline --threads 1 -n 1000
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.harness.result import Result, commit, read_metrics, result_path, write_result
from bench.quality._eval_common import RESULTS, budget, console
from softdiff.data import load_dataset
from softdiff.distributed import resolve_device
from softdiff.eval import get_extractor, reference_data
from softdiff.imageio import atomic_write_bytes, save_grid, to_uint8
from softdiff.restore import (
    DEFAULT_PIGDM_WEIGHTING,
    DPS,
    PIGDM_WEIGHTINGS,
    Restoration,
    build_method,
    build_operator,
    default_sampler,
    degrade,
    level_entry_applies,
    psnr,
    restore,
    score_restoration,
)
from softdiff.train import load_run

OPERATORS = ("blur:sigma=2@0.02", "blur:sigma=2@0.05", "mask:fraction=0.5@0", "box:size=12@0", "pixelate:factor=4@0")
METHODS = ("degraded", "tikhonov", "wiener", "level", "project", "dps", "ddrm", "diffpir", "pigdm")
DPS_SCALES = (0.3, 1.0, 3.0)
STRIP_IMAGES = 6


def parse_operator_noise(text: str) -> tuple[str, float]:
    spec, _, noise = text.partition("@")
    return spec, float(noise or 0)


def cell_key(op: str, noise: float, method: str, args: argparse.Namespace, step: int) -> str:
    return f"{op}@{noise:g}|{method}|{args.sampler}|{args.steps}|k{args.samples}|n{args.n}|seed{args.seed}|step{step}"


def parse_method(text: str, default_sampler: str) -> tuple[str, str]:
    """``project`` or ``project:naive`` (a method with its own sampler)."""
    method, _, sampler = text.partition(":")
    return method, sampler or default_sampler


def tune_dps(
    run, A, sigma_y: float, train: torch.Tensor, sampler: str, args: argparse.Namespace
) -> tuple[float, dict[str, float]]:
    """The DPS scale with the best single-sample PSNR on held-out training images."""
    clean = train[: args.tune_images]
    y = degrade(A, clean, sigma_y, seed=args.seed + 2)
    scores = {}
    for scale in DPS_SCALES:
        method = DPS(scale, default_sampler(run) if sampler == "auto" else sampler, args.steps)
        result = restore(run, method, A, y, sigma_y, seed=args.seed + 2, batch_size=args.batch_size)
        scores[scale] = float(psnr(result.mean, clean).mean())
    return max(scores, key=scores.__getitem__), {str(k): v for k, v in scores.items()}


def strip_rows(method: str, images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip columns of one method: the estimate for the linear ones, a sample and the mean for the others."""
    if method in ("degraded", "tikhonov", "wiener"):
        return {method: images["mean"]}
    return {f"{method} sample": images["sample"], f"{method} mean": images["mean"]}


def strip(path: Path, clean: torch.Tensor, rows: dict[str, torch.Tensor]) -> None:
    """Rows: the first images; columns: clean, then each method's image (the legend is in the docs)."""
    columns = [clean] + list(rows.values())
    grid = torch.stack(columns, dim=1).flatten(0, 1)
    save_grid(grid, path, nrow=len(columns), scale=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, help="run folder or checkpoint (required unless --table)")
    parser.add_argument("-n", type=int, default=1000, help="first n test images")
    parser.add_argument("--operators", default=",".join(OPERATORS), help="comma list of SPEC@SIGMA_Y")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--samples", type=int, default=2, help="posterior samples per image")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--sampler", default="auto")
    parser.add_argument("--train-images", type=int, default=256, help="held-out training images (r_t^2, lambda)")
    parser.add_argument("--wiener-images", type=int, default=4096)
    parser.add_argument("--tune-images", type=int, default=32, help="training images to tune the DPS scale on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tag", default=None, help="label a second configuration at the same commit")
    parser.add_argument("--pigdm-weighting", default=DEFAULT_PIGDM_WEIGHTING, choices=PIGDM_WEIGHTINGS)
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/quality/restore-COMMIT.json")
    parser.add_argument(
        "--strips", type=Path, default=None, help="where the strip PNGs go (default: beside the result's pictures)"
    )
    parser.add_argument("--table", type=Path, nargs="+", help="print the comparison table of these results files")
    parser.add_argument("--plot", type=Path, help="with --table: draw PSNR vs FID of the means to this PNG")
    args = parser.parse_args()
    if args.table:
        comparison(args.table, args.plot)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    run = load_run(args.ckpt, device=device)
    test = load_dataset("fashion-mnist", "test")
    clean = test.batch(slice(0, args.n))
    train_data = load_dataset("fashion-mnist", "train")
    train = train_data.subset(args.wiener_images, seed=args.seed + 1).batch(slice(None))
    extractor, real = get_extractor("fashion").to(device), reference_data(run)
    out = args.out or result_path("quality", "restore", *commit(), args.tag)
    cells: dict[str, Any] = read_metrics(out).get("cells", {}) if out.is_file() else {}  # resume
    pictures_dir = RESULTS / "restore-strips" / out.stem  # one result's pictures: runs must not share a cache
    args.strips = args.strips or pictures_dir  # never into docs/ unless asked: a run of another model would redraw them

    def save() -> None:
        settings = vars(args) | {"out": str(out), "strips": str(args.strips), "ckpt": str(args.ckpt)}
        metrics = {"budget": budget(run), "cells": cells}
        write_result(Result.now("quality", "restore", settings, metrics, tag=args.tag), out)

    for text in args.operators.split(","):
        spec, sigma_y = parse_operator_noise(text)
        A = build_operator(spec, run.image_shape, run.process)
        y = degrade(A, clean, sigma_y, seed=args.seed)
        rows: dict[str, torch.Tensor] = {}
        for label in args.methods.split(","):
            method, sampler = parse_method(label, args.sampler)
            key = cell_key(spec, sigma_y, label, args, run.step)
            pictures = pictures_dir / (key.replace("|", "_").replace(":", "-").replace("=", "") + ".npz")
            if key in cells and pictures.is_file():
                console.print(f"{key}: reused", highlight=False)
                with np.load(pictures) as saved:
                    rows |= strip_rows(label, {k: torch.from_numpy(v).float() / 127.5 - 1 for k, v in saved.items()})
                continue
            extra: dict[str, Any] = {}
            start = time.perf_counter()
            if method == "degraded":
                result = Restoration(y[:, None], y, "degraded", 0, 0.0)
            else:
                if method == "level" and not level_entry_applies(run, A, sigma_y):
                    continue
                scale = 1.0
                if method == "dps":
                    scale, extra["dps_tuning_psnr"] = tune_dps(run, A, sigma_y, train, sampler, args)
                    extra["dps_scale"] = scale
                chosen = build_method(
                    method, run, A, sigma_y, train=train if method == "wiener" else train[: args.train_images],
                    sampler=sampler, steps=args.steps, dps_scale=scale, pigdm_weighting=args.pigdm_weighting,
                    device=device,
                )  # fmt: skip
                if method == "pigdm":
                    extra["pigdm_weighting"] = args.pigdm_weighting
                if method == "tikhonov":
                    extra["lambda"] = chosen.lam
                if hasattr(chosen, "sampler"):
                    extra["sampler"] = chosen.sampler
                samples = args.samples if chosen.steps else 1
                result = restore(
                    run, chosen, A, y, sigma_y, samples=samples, seed=args.seed, batch_size=args.batch_size,
                    device=device,
                )  # fmt: skip
            setup = time.perf_counter() - start - result.seconds
            metrics = score_restoration(result, A, y, clean, sigma_y, real=real, extractor=extractor, device=device)
            cells[key] = metrics | extra | {"operator": spec, "method": label, "setup_seconds": setup}
            images = {"mean": result.mean[:STRIP_IMAGES], "sample": result.samples[:STRIP_IMAGES, 0]}
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **{k: to_uint8(v).numpy() for k, v in images.items()})
            atomic_write_bytes(pictures, buffer.getvalue())
            rows |= strip_rows(label, images)
            save()
            m = cells[key]
            console.print(
                f"{spec}@{sigma_y:g} {label:>13}: mean PSNR {m['mean']['psnr']:.2f} SSIM {m['mean']['ssim']:.3f} "
                f"FID {m['mean']['fid']:.1f} | sample PSNR {m['sample']['psnr']:.2f} FID {m['sample']['fid']:.1f} | "
                f"consistency {m['mean']['consistency']:.4f} | {m['seconds_per_image']:.3f} s/image",
                highlight=False,
            )
        name = f"{spec.split(':')[0]}-{sigma_y:g}"
        strip(args.strips / f"restore-{name}.png", clean[:STRIP_IMAGES], rows)
        console.print(f"strip {name}: columns clean | " + " | ".join(rows), highlight=False)
    save()
    header = "| operator | method | NFE | PSNR mean | PSNR sample | SSIM mean | SSIM sample | FID mean | FID sample |"
    print(f"\nrestoration of the first {args.n} test images, step {run.step} model\n")
    print(header + " consistency (mean / sample) | s/image |")
    print("|" + "---|" * 11)
    for m in cells.values():
        mean, one = m["mean"], m["sample"]
        print(
            f"| {m['operator']}, sigma_y={m['sigma_y']:g} | {m['method']} | {m['nfe']} | {mean['psnr']:.2f} | "
            f"{one['psnr']:.2f} | {mean['ssim']:.3f} | {one['ssim']:.3f} | {mean['fid']:.1f} | {one['fid']:.1f} | "
            f"{mean['consistency']:.4f} / {one['consistency']:.4f} | {m['seconds_per_image']:.3f} |"
        )


def comparison(paths: list[Path], plot: Path | None) -> None:
    """Rows: methods; columns: operator at sigma_y; cells: PSNR / SSIM / FID of the mean, consistency."""
    rows: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    columns: list[str] = []
    budgets: list[str] = []
    for path in paths:
        data = json.loads(path.read_text())  # a harness result, or a legacy document (settings at the top)
        document = {"settings": data["parameters"], **data["metrics"]} if "schema" in data else data
        prior = Path(document["settings"]["ckpt"]).name
        settings, trained = document["settings"], document.get("budget", {})
        budgets.append(
            f"{prior}: {trained.get('checkpoint_step', '?')} steps x batch {trained.get('batch_size', '?')}, "
            f"n = {settings['n']} test images, {settings['samples']} samples each"
        )
        for cell in document["cells"].values():
            column = f"{cell['operator']} @ {cell['sigma_y']:g}"
            columns += [column] if column not in columns else []
            nfe = cell["nfe"] or int(document["settings"]["steps"])
            rows.setdefault((prior, cell["method"], nfe), {})[column] = cell | {"n": cell["n"]}
    print("| prior | method | NFE | " + " | ".join(columns) + " |")
    print("|" + "---|" * (3 + len(columns)))
    for (prior, method, nfe), cells in rows.items():
        text = ["-" if (c := cells.get(column)) is None else _cell(c["mean"]) for column in columns]
        print(f"| {prior} | {method} | {nfe if method not in LINEAR else 0} | " + " | ".join(text) + " |")
    if plot is not None:
        perception_distortion(rows, columns, plot, "; ".join(dict.fromkeys(budgets)))


LINEAR = ("degraded", "tikhonov", "wiener")


def _cell(m: dict[str, float]) -> str:
    return f"{m['psnr']:.2f} / {m['ssim']:.3f} / {m['fid']:.0f} / {m['consistency']:.3f}"


def perception_distortion(rows: dict, columns: list[str], path: Path, caption: str = "") -> None:
    """One panel per operator: PSNR of the posterior mean (distortion) against its FID (perception).

    Colour: the method; marker: the prior and NFE budget (the linear baselines use their prior's).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((prior, 0 if method in LINEAR else nfe) for prior, method, nfe in rows))
    markers = dict(zip(groups, "os^DvP*Xh<>", strict=False))
    labels = {key for key in rows if key[1] != "degraded"}
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.6 + 0.18 * len(labels) / 4), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        for (prior, method, nfe), cells in rows.items():
            if column in cells and method != "degraded":
                m, kind = cells[column]["mean"], method.split(":")[0]
                k = METHODS.index(kind) if kind in METHODS else 0
                budget = 0 if kind in LINEAR else nfe
                ax.scatter(
                    m["fid"],
                    m["psnr"],
                    marker=markers.get((prior, budget), "o"),
                    color=f"C{k}",
                    label=f"{method}, NFE {budget} ({prior})",
                )
        ax.set_xscale("log")
        ax.set_title(column, fontsize=9)
        ax.set_xlabel("FID of the means (lower: more realistic)")
        ax.set_ylabel("PSNR of the mean, dB")
    legend = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=5, fontsize=7)
    if caption:
        fig.suptitle(f"perception against distortion ({caption})", fontsize=9)
    bottom = min(0.5, 0.08 + 0.04 * ((len(legend) + 4) // 5))  # room for the legend rows
    fig.tight_layout(rect=(0, bottom, 1, 0.95))
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
