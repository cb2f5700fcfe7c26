"""``softdiff restore``: posterior samples for degraded images with a trained run as the prior."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..data import load_dataset
from ..eval import get_extractor, reference_data
from ..imageio import atomic_write_bytes, load_image, save_grid, to_uint8
from ..resources import writable_dir
from ..restore import (
    METHODS,
    Degradation,
    build_method,
    build_operator,
    check_method_name,
    degradation_names,
    degrade,
    parse_operator,
    restore,
    score_restoration,
)
from ..samplers import get, names
from ..train import load_run
from ..train.trainer import resolve_device
from .common import console, user_errors

TRAIN_IMAGES = 256  # held-out training images for r_t^2 (project) and lambda (tikhonov)
WIENER_IMAGES = 4096  # the data covariance needs more images than pixels


class _Reporter:
    """A Rich bar on a terminal; otherwise a plain line at every tenth of the work."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled, self.done, self.shown = total, label, enabled, 0.0, 0
        self.start = time.perf_counter()
        self.bar = None
        if enabled and console.is_terminal:
            columns = (TextColumn(f"[bold]{label}[/]"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total}"))
            self.bar = Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), console=console)
            self.task = self.bar.add_task(label, total=total)

    def __enter__(self) -> _Reporter:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def advance(self, images: float) -> None:
        self.done += images
        if self.bar is not None:
            self.bar.update(self.task, advance=images)
        elif self.enabled and int(10 * self.done / self.total) > self.shown:
            self.shown = int(10 * self.done / self.total)
            elapsed = time.perf_counter() - self.start
            print(
                f"{self.label}: {self.shown * 10}% of {self.total} images, {elapsed:.0f} s", file=sys.stdout, flush=True
            )


def _npz(path: Path, **arrays: object) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buffer.getvalue())


def _load_files(paths: list[Path], shape: tuple[int, int, int]) -> torch.Tensor:
    c, h, w = shape
    images = []
    for path in paths:
        image = load_image(path, channels=c)
        if tuple(image.shape[-2:]) != (h, w):
            raise ValueError(
                f"size mismatch: {path} is {image.shape[-2]}x{image.shape[-1]} but the model restores {h}x{w} images"
            )
        images.append(image)
    return torch.cat(images)


def _strips(
    out: Path, y: torch.Tensor, samples: torch.Tensor, mean: torch.Tensor, clean: torch.Tensor | None, scale: int
) -> None:
    """One PNG per image: degraded | samples | mean | clean (when known)."""
    for i in range(len(y)):
        row = [y[i : i + 1], samples[i], mean[i : i + 1]] + ([clean[i : i + 1]] if clean is not None else [])
        picture = torch.cat(row)
        save_grid(picture, out / "strips" / f"{i:06d}.png", nrow=len(picture), scale=scale)


@user_errors
def restore_command(
    images: list[Path] = typer.Argument(None, help="Degraded image files to restore (PNG, JPEG, ...)."),
    ckpt: Path = typer.Option(..., "--ckpt", help="Run folder (latest checkpoint) or one checkpoint folder."),
    operator: str = typer.Option(
        ..., "--operator", "-A", help=f"The degradation, e.g. blur:sigma=2 ({', '.join(degradation_names())})."
    ),
    noise: float = typer.Option(..., "--noise", help="sigma_y: std of the measurement noise, images in [-1, 1]."),
    from_dataset: str | None = typer.Option(
        None, "--from-dataset", help="Degrade the first -n images of this data set (seeded) and score the results."
    ),
    split: str = typer.Option("test", "--split", help="Split of --from-dataset."),
    n: int = typer.Option(16, "-n", min=1, help="Images of --from-dataset."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Folder of --from-dataset's files."),
    method: str = typer.Option(
        "auto", "--method", "-m", help=f"One of: {', '.join(METHODS)} (auto: level, else project)."
    ),
    samples: int = typer.Option(
        4, "--samples", "-k", min=1, help="Posterior samples per image (their mean is restored.npz)."
    ),
    sampler: str = typer.Option(
        "auto",
        "--sampler",
        "-s",
        help=f"Sampler of level/project/dps: auto (ancestral where it applies), {', '.join(names())}.",
    ),
    steps: int = typer.Option(50, "--steps", min=1, help="Sampler steps (level entry: from tau to 0)."),
    dps_scale: float = typer.Option(1.0, "--dps-scale", min=0.0, help="DPS step: x -= scale * grad ||y - A D(x)||."),
    lam: float | None = typer.Option(
        None, "--lambda", min=0.0, help="Tikhonov weight (default: tuned on training images)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    seed: int = typer.Option(0, "--seed", help="Image i's samples depend only on (seed, i), never on the batch size."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Images per batch (each with K samples)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    raw: bool = typer.Option(False, "--raw", help="Use the raw weights instead of the EMA weights."),
    fid: bool = typer.Option(True, "--fid/--no-fid", help="With --from-dataset: FID/KID of the restorations."),
    features: str = typer.Option("fashion", "--features", help="FID features: fashion (offline net) or inception."),
    scale: int = typer.Option(3, "--scale", min=1, help="Enlarge the PNG strips by this factor."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
) -> None:
    """Restore degraded images: writes DIR/restored.npz (posterior means), samples.npz, degraded.npz,
    strips/NNNNNN.png and, with --from-dataset, metrics.json.

    The measurement model is y = A x + n with n ~ N(0, sigma_y^2 I) on images in [-1, 1].
    """
    spec = parse_operator(operator)  # bad input fails before the checkpoint is read
    check_method_name(method)
    if sampler != "auto":
        get(sampler)
    if not noise >= 0:
        raise ValueError(f"--noise is the std sigma_y of the measurement noise and must be >= 0, got {noise}")
    if bool(images) == (from_dataset is not None):
        raise ValueError("give either image files or --from-dataset NAME, not both and not neither")
    target = resolve_device(device)
    run = load_run(ckpt, device=target, ema=not raw)
    writable_dir(out, "--out folder")  # before minutes of restoration
    A: Degradation = build_operator(spec, run.image_shape, run.process)

    clean = real = extractor = no_fid = None
    if from_dataset is not None:
        data = load_dataset(from_dataset, split, data_dir)
        if data.shape != run.image_shape:
            raise ValueError(
                f"size mismatch: {from_dataset} has {data.shape} images but the model restores {run.image_shape}"
            )
        clean = data.batch(slice(0, n))
        y = degrade(A, clean, noise, seed=seed)
        if fid and len(clean) >= 2:
            extractor = get_extractor(features)  # a missing Inception extra fails before the sampling
            try:
                extractor.check(clean[:1])
                real = reference_data(run)
            except ValueError as err:
                no_fid, extractor = f"no FID: {err}", None
    else:
        y = _load_files(list(images), run.image_shape)

    train = None
    if method in ("auto", "project", "tikhonov", "wiener"):
        d = run.config.data
        train_data = load_dataset(d.dataset, "train", d.data_dir, image_size=d.image_size, channels=d.channels)
        count = WIENER_IMAGES if method == "wiener" else TRAIN_IMAGES
        train = train_data.subset(count, seed=seed + 1).batch(slice(None))
    chosen = build_method(
        method, run, A, noise, train=train, sampler=sampler, steps=steps, dps_scale=dps_scale, lam=lam, device=target
    )
    chosen.check(run, A, noise)  # e.g. level entry on an operator that is no level: fail before any output
    console.print(
        f"restoring {len(y)} image(s) under {A.spec}, sigma_y={noise:g} with {chosen.name}"
        + (f" ({chosen.sampler}, {steps} steps, {chosen.nfe()} network calls per sample)" if chosen.steps else "")
        + f", {samples} sample(s) each",
        highlight=False,
    )
    with _Reporter(len(y), "restoring", progress) as bar:
        result = restore(
            run, chosen, A, y, noise, samples=samples, seed=seed, batch_size=batch_size, device=target,
            on_progress=bar.advance,
        )  # fmt: skip

    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "operator": A.spec,
        "sigma_y": noise,
        "method": chosen.name,
        "sampler": getattr(chosen, "sampler", None),
        "steps": chosen.steps,
        "nfe": result.nfe,
        "samples": samples,
        "seed": seed,
        "checkpoint": str(run.path),
        "checkpoint_step": run.step,
        "weights": "raw" if raw else "ema",
        "level": A.level,
    }
    _npz(out / "restored.npz", images=to_uint8(result.mean).numpy(), meta=json.dumps(meta))
    _npz(out / "samples.npz", images=to_uint8(result.samples).numpy(), meta=json.dumps(meta))
    _npz(out / "degraded.npz", images=to_uint8(y).numpy(), y=y.float().numpy(), meta=json.dumps(meta))
    _strips(out, y, result.samples, result.mean, clean, scale)
    written = ["restored.npz", "samples.npz", "degraded.npz", "strips/"]
    if clean is not None:
        if no_fid is not None:
            console.print(no_fid, highlight=False, markup=False)
        metrics = score_restoration(result, A, y, clean, noise, real=real, extractor=extractor, device=target)
        metrics |= {"meta": meta, "dataset": f"first {len(clean)} images of {from_dataset} {split}"}
        atomic_write_bytes(out / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
        written.append("metrics.json")
        summary = ", ".join(
            f"{key} PSNR {metrics[key]['psnr']:.2f} dB SSIM {metrics[key]['ssim']:.3f}"
            + (f" FID {metrics[key]['fid']:.1f}" if "fid" in metrics[key] else "")
            for key in ("mean", "sample")
        )
        console.print(
            f"{summary}; consistency {metrics['mean']['consistency']:.4f} (sigma_y {noise:g})", highlight=False
        )
    console.print(
        f"wrote {len(y)} restorations ({result.seconds_per_image:.2f} s per image) to {out}/: {', '.join(written)}",
        highlight=False,
    )
