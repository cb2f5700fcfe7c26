"""``softdiff restore``: posterior samples for degraded images with a trained run as the model."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer
from PIL import Image
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..conditioning import DEFAULT_GUIDANCE, Guided, check_guidance, guided_calls, resolve_classes
from ..data import load_dataset
from ..data.datasets import SIZED
from ..distributed import resolve_device
from ..eval import get_extractor, reference_data
from ..imageio import atomic_write_bytes, load_image, to_uint8
from ..resources import check_memory, writable_dir
from ..restore import (
    DEFAULT_PIGDM_WEIGHTING,
    METHODS,
    NEEDS_TRAINING_IMAGES,
    PIGDM_WEIGHTINGS,
    STRIDE,
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
from ..restore.output import labelled_strip, output_names, save_png
from ..samplers import get, names
from ..seeding import MAX_SEED
from ..train import load_run
from .common import THREADS_HELP, console, set_threads, user_errors

TRAIN_IMAGES = 256  # held-out training images for r_t^2 (project) and lambda (tikhonov)
WIENER_IMAGES = 4096  # the data covariance needs more images than pixels
QUANTISATION_NOISE = 2 / 255 / math.sqrt(12)  # std of rounding to 8 bits, images in [-1, 1]
MAX_INDEX_FILE = 16 * 2**20
FID_MIN_N = 100  # below it FID is strongly biased upward


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


def _regular(path: Path, what: str) -> Path:
    """A FIFO, a device or a folder would block or fail mid-run: only regular files are read."""
    if not path.exists():
        raise ValueError(f"{what} {path} does not exist")
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file")
    return path


def _fit(image: torch.Tensor, path: Path, shape: tuple[int, int, int], resize: bool) -> torch.Tensor:
    """Centre-crop to the model's aspect ratio and resize (bicubic), as folder data sets are trained; or refuse."""
    _, h, w = shape
    if tuple(image.shape[-2:]) == (h, w):
        return image
    if not resize:
        raise ValueError(
            f"size mismatch: {path} is {image.shape[-2]}x{image.shape[-1]} but the model restores {h}x{w} images; "
            "pass --resize to centre-crop and resize it as training does"
        )
    picture = to_uint8(image)[0].permute(1, 2, 0).numpy()
    picture = Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture)
    side_h, side_w = min(picture.height, picture.width * h // w), min(picture.width, picture.height * w // h)
    left, top = (picture.width - side_w) // 2, (picture.height - side_h) // 2
    picture = picture.crop((left, top, left + side_w, top + side_h)).resize((w, h), Image.BICUBIC)
    array = np.asarray(picture, dtype=np.uint8)
    array = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1


def _load_files(paths: list[Path], shape: tuple[int, int, int], resize: bool) -> torch.Tensor:
    return torch.cat([_fit(load_image(_regular(p, "image"), channels=shape[0]), p, shape, resize) for p in paths])


def _read_indices(path: Path, size: int, split: str) -> list[int]:
    """Image indices from a file: a JSON list, or integers separated by spaces, commas or new lines."""
    _regular(path, "--indices file")
    if path.stat().st_size > MAX_INDEX_FILE:
        raise ValueError(f"--indices file {path} is larger than {MAX_INDEX_FILE // 2**20} MiB")
    text = path.read_text()
    try:
        values = json.loads(text) if text.lstrip().startswith("[") else text.replace(",", " ").split()
        indices = [int(v) if not isinstance(v, bool) and float(v) == int(float(v)) else None for v in values]
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"--indices file {path} must hold whole numbers (a JSON list or one per line)") from None
    if not indices or None in indices:
        raise ValueError(f"--indices file {path} must hold at least one whole number, and only whole numbers")
    bad = [i for i in indices if not 0 <= i < size]
    if bad:
        raise ValueError(f"--indices: {bad[0]} is out of range; the {split} split has indices 0 to {size - 1}")
    if len(set(indices)) != len(indices):
        duplicate = next(i for i in indices if indices.count(i) > 1)
        raise ValueError(f"--indices: image {duplicate} is listed twice")
    return indices


def _check_options(
    noise: float, seed: int, lam: float | None, scales: dict[str, float], units: dict[str, float]
) -> None:
    """Every numeric option, before the checkpoint is read: finite, in range, one line each."""
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"--noise is the std sigma_y of the measurement noise: a finite number >= 0, got {noise}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must lie in [0, {MAX_SEED}] (2^63 - 1, as in every command), got {seed}")
    if lam is not None and not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"--lambda must be a finite number >= 0, got {lam}")
    for name, value in scales.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"--{name} must be a finite number >= 0, got {value}")
    for name, value in units.items():
        if not 0 <= value <= 1:
            raise ValueError(f"--{name} must lie in [0, 1], got {value}")


def _parameters(method: object) -> dict[str, object]:
    """The method's settings (its dataclass fields that are plain numbers or names) for metrics.json."""
    if not dataclasses.is_dataclass(method):
        return {}
    values = {f.name: getattr(method, f.name) for f in dataclasses.fields(method)}
    return {k: v for k, v in values.items() if isinstance(v, (int, float, str, bool)) and k != "name"}


def _write_pictures(
    out: Path, names: list[str], y: torch.Tensor, samples: torch.Tensor, mean: torch.Tensor,
    clean: torch.Tensor | None, scale: int,
) -> None:  # fmt: skip
    """restored/NAME.png (the mean) and strips/NAME.png: degraded | samples | mean | clean, labelled."""
    k = samples.shape[1]
    for i, name in enumerate(names):
        save_png(mean[i], out / "restored" / f"{name}.png")
        columns = [("degraded", y[i])] + [(f"sample {j + 1}" if k > 1 else "sample", samples[i, j]) for j in range(k)]
        columns += [("mean", mean[i])] + ([("clean", clean[i])] if clean is not None else [])
        labelled_strip(columns, out / "strips" / f"{name}.png", scale)


@user_errors
def restore_command(
    images: list[Path] = typer.Argument(None, help="Degraded image files to restore (PNG, JPEG, ...)."),
    ckpt: Path = typer.Option(..., "--ckpt", help="Run folder (latest checkpoint) or one checkpoint folder."),
    operator: str = typer.Option(
        ...,
        "--operator",
        "-A",
        help="The degradation: any `train --corruption` spec, its parts frozen at t= (default 1), e.g. "
        f"blur:sigma=2, motion:t=0.5, mymod:MyOp:k=3,t=0.3; or {', '.join(degradation_names())}:t=0.6 (the model's "
        "own C_t).",
    ),
    noise: float = typer.Option(
        ...,
        "--noise",
        help="sigma_y: std of the measurement noise, images in [-1, 1]. 0 on 8-bit image files is taken as "
        f"their rounding noise, {QUANTISATION_NOISE:.5f} (2/255/sqrt(12)).",
    ),
    from_dataset: str | None = typer.Option(
        None, "--from-dataset", help="Degrade images of this data set (seeded) and score the results."
    ),
    split: str = typer.Option("test", "--split", help="Split of --from-dataset."),
    n: int = typer.Option(16, "-n", min=1, help="The first n images of --from-dataset (unless --indices)."),
    indices: Path | None = typer.Option(
        None, "--indices", help="File of --from-dataset image indices (JSON list or one per line) instead of -n."
    ),
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
        help=f"Sampler of level/project/dps/pigdm: auto (ancestral where it applies), {', '.join(names())}.",
    ),
    steps: int = typer.Option(50, "--steps", min=1, help="Sampler steps (level entry: from tau to 0)."),
    dps_scale: float = typer.Option(1.0, "--dps-scale", help="DPS step: x -= scale * grad ||y - A D(x)||."),
    lam: float | None = typer.Option(
        None, "--lambda", help="Tikhonov weight (default: tuned on training images), or DiffPIR's lambda (default 1)."
    ),
    eta: float = typer.Option(0.85, "--eta", help="DDRM's eta in [0, 1]: noise in unseen and noisy coordinates."),
    eta_b: float = typer.Option(1.0, "--eta-b", help="DDRM's eta_b in [0, 1]: how much of y enters seen coordinates."),
    zeta: float = typer.Option(0.3, "--zeta", help="DiffPIR's zeta in [0, 1]: fresh noise in each re-noising."),
    pigdm_scale: float = typer.Option(1.0, "--pigdm-scale", help="PiGDM guidance scale on its weighting."),
    pigdm_weighting: str = typer.Option(
        DEFAULT_PIGDM_WEIGHTING,
        "--pigdm-weighting",
        help=f"PiGDM's weight on the likelihood score: {' or '.join(PIGDM_WEIGHTINGS)} (tweedie: s_t^2, exact for an "
        "exact score; authors: r_t^2, the authors' released code).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    seed: int = typer.Option(0, "--seed", help="Image i's samples depend only on (seed, i), never on the batch size."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Images per batch (each with K samples)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    raw: bool = typer.Option(False, "--raw", help="Use the raw weights instead of the EMA weights."),
    resize: bool = typer.Option(
        False, "--resize", help="Centre-crop and resize image files of another size to the model's (else refused)."
    ),
    fid: bool = typer.Option(True, "--fid/--no-fid", help="With --from-dataset: FID/KID of the restorations."),
    features: str = typer.Option("fashion", "--features", help="FID features: fashion (offline net) or inception."),
    scale: int = typer.Option(3, "--scale", min=1, help="Enlarge the PNG strips by this factor."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
    threads: int | None = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    klass: str | None = typer.Option(
        None,
        "--class",
        help="Restore with the prior of one class of a class-conditional run (name or index): every image is "
        "taken to be of that class.",
    ),
    guidance: float | None = typer.Option(
        None,
        "--guidance",
        help=f"With --class: classifier-free guidance weight w >= 0 on x0_hat, x0_u + w (x0_c - x0_u), as in "
        f"sample (default: {DEFAULT_GUIDANCE:g}, the conditional model; w not 0 or 1: 2 network calls each).",
    ),
) -> None:
    """Restore degraded images: writes DIR/restored.npz (posterior means), samples.npz, degraded.npz,
    restored/NAME.png, strips/NAME.png (degraded | samples | mean | clean) and, with --from-dataset,
    metrics.json (with the image indices, seeds and method parameters that reproduce it).

    The measurement model is y = A x + n with n ~ N(0, sigma_y^2 I) on images in [-1, 1].
    """
    set_threads(threads)
    spec = parse_operator(operator)  # bad input fails before the checkpoint is read
    check_method_name(method)
    if sampler != "auto":
        get(sampler)
    scales, units = {"dps-scale": dps_scale, "pigdm-scale": pigdm_scale}, {"eta": eta, "eta-b": eta_b, "zeta": zeta}
    _check_options(noise, seed, lam, scales, units)
    if pigdm_weighting not in PIGDM_WEIGHTINGS:
        raise ValueError(f"--pigdm-weighting must be one of {', '.join(PIGDM_WEIGHTINGS)}, got {pigdm_weighting!r}")
    if method == "diffpir" and lam == 0:
        raise ValueError("--lambda is DiffPIR's data weight: it must be > 0")
    if bool(images) == (from_dataset is not None):
        raise ValueError("give either image files or --from-dataset NAME, not both and not neither")
    if indices is not None and from_dataset is None:
        raise ValueError("--indices picks images of --from-dataset; image files are restored as given")
    for path in images or []:
        _regular(path, "image")
    if guidance is not None:
        check_guidance(guidance)
        if klass is None:
            raise ValueError(
                "--guidance needs --class: it weighs the class-conditional model against the unconditional"
            )
    weight = DEFAULT_GUIDANCE if guidance is None else guidance
    target = resolve_device(device)
    run = load_run(ckpt, device=target, ema=not raw)
    label = None
    if klass is not None:
        found = resolve_classes([klass], run.classes)
        if len(found) != 1:
            raise ValueError(f"--class takes one class for restoration, got {klass!r} ({len(found)} classes)")
        label = found[0]
        if weight != 1:  # w = 1 is the conditional denoiser itself: the run stays as loaded
            run = dataclasses.replace(run, denoiser=Guided(run.denoiser, weight))
    writable_dir(out, "--out folder")  # before minutes of restoration
    A: Degradation = build_operator(spec, run.image_shape, run.process)

    clean = real = extractor = no_fid = None
    sigma_y, note = noise, None
    if from_dataset is not None:
        channels, side, _ = run.image_shape  # a folder is read at the run's size, as it was trained
        sized = {"image_size": side, "channels": channels} if from_dataset in SIZED else {}
        data = load_dataset(from_dataset, split, data_dir, **sized)
        if data.shape != run.image_shape:
            raise ValueError(
                f"size mismatch: {from_dataset} has {data.shape} images but the model restores {run.image_shape}"
            )
        if indices is not None:
            ids = _read_indices(indices, len(data), split)
        elif n > len(data):
            raise ValueError(f"-n {n} asks for more images than the {len(data)} of {from_dataset} {split}")
        else:
            ids = list(range(n))
        check_memory(len(ids) * samples * math.prod(run.image_shape) * 4 * 3, f"{len(ids)} images x {samples} samples")
        clean = data.batch(torch.tensor(ids))
        y = degrade(A, clean, noise, seed=seed, ids=ids)
        names = [f"{i:06d}" for i in ids]
        if fid and len(clean) >= 2:
            extractor = get_extractor(features)  # a missing Inception extra fails before the sampling
            try:
                extractor.check(clean[:1])
                real = reference_data(run)
            except ValueError as err:
                no_fid, extractor = f"no FID: {err}", None
    else:
        check_memory(len(images) * samples * math.prod(run.image_shape) * 4 * 3, f"{len(images)} images x {samples}")
        y = _load_files(list(images), run.image_shape, resize)
        ids, names = list(range(len(y))), output_names([p.stem for p in images])
        if noise == 0:
            sigma_y = QUANTISATION_NOISE
            note = (
                f"--noise 0 on 8-bit images: their rounding is measurement noise, so sigma_y = {sigma_y:.5f} "
                "(2/255/sqrt(12), images in [-1, 1])"
            )

    train = None
    if method in NEEDS_TRAINING_IMAGES:
        d = run.config.data
        train_data = load_dataset(d.dataset, "train", d.data_dir, image_size=d.image_size, channels=d.channels)
        count = WIENER_IMAGES if method == "wiener" else TRAIN_IMAGES
        train = train_data.subset(count, seed=seed + 1).batch(slice(None))
    chosen = build_method(
        method, run, A, sigma_y, train=train, sampler=sampler, steps=steps, dps_scale=dps_scale, lam=lam, eta=eta,
        eta_b=eta_b, zeta=zeta, pigdm_scale=pigdm_scale, pigdm_weighting=pigdm_weighting, device=target,
    )  # fmt: skip
    chosen.check(run, A, sigma_y)  # e.g. level entry on an operator that is no level: fail before any output
    if note is not None:
        console.print(note, highlight=False, markup=False)
    sampler_used = getattr(chosen, "sampler", None)
    console.print(
        f"restoring {len(y)} image(s) under {A.spec}, sigma_y={sigma_y:g} with {chosen.name}"
        + (
            f" ({sampler_used or 'its own'} sampler, {steps} steps, {chosen.nfe()} network calls per sample)"
            * bool(chosen.steps)
        )
        + f", {samples} sample(s) each"
        + (f", class {run.classes[label]}" if label is not None and run.classes else "")
        + (f", guidance {weight:g}" if label is not None and weight != DEFAULT_GUIDANCE else ""),
        highlight=False,
        markup=False,
    )
    with _Reporter(len(y), "restoring", progress) as bar:
        result = restore(
            run, chosen, A, y, sigma_y, samples=samples, seed=seed, batch_size=batch_size, device=target, ids=ids,
            on_progress=bar.advance, cond=None if label is None else torch.full((len(y),), label, dtype=torch.long),
        )  # fmt: skip

    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "operator": A.spec,
        "sigma_y": sigma_y,
        "noise_option": noise,
        "method": chosen.name,
        "parameters": _parameters(chosen),
        "sampler": sampler_used,
        "steps": chosen.steps,
        "nfe": result.nfe * (guided_calls(weight) if label is not None else 1),
        "samples": samples,
        "seed": seed,
        "checkpoint": str(run.path),
        "checkpoint_step": run.step,
        "weights": "raw" if raw else "ema",
        "level": A.level,
    }
    if label is not None and run.classes is not None:
        meta["class"] = run.classes[label]
        meta["guidance"] = weight
    _npz(out / "restored.npz", images=to_uint8(result.mean).numpy(), meta=json.dumps(meta))
    _npz(out / "samples.npz", images=to_uint8(result.samples).numpy(), meta=json.dumps(meta))
    _npz(out / "degraded.npz", images=to_uint8(y).numpy(), y=y.float().numpy(), meta=json.dumps(meta))
    _write_pictures(out, names, y, result.samples, result.mean, clean, scale)
    written = ["restored.npz", "samples.npz", "degraded.npz", "restored/", "strips/"]
    if clean is not None:
        if no_fid is not None:
            console.print(no_fid, highlight=False, markup=False)
        metrics = score_restoration(result, A, y, clean, sigma_y, real=real, extractor=extractor, device=target)
        metrics |= {"meta": meta, "dataset": f"{len(ids)} images of {from_dataset} {split} (protocol.indices)"}
        metrics["protocol"] = {
            "indices": ids,
            "measurement_noise": {"seed": seed, "stream": "(seed, -1 - index)", "sigma_y": sigma_y},
            "sampler_noise": {"seed": seed, "stream": f"(seed, index * {STRIDE} + sample)"},
            "method": chosen.name,
            "parameters": _parameters(chosen) | {"sampler": sampler_used, "steps": chosen.steps},
        }
        atomic_write_bytes(out / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
        written.append("metrics.json")
        console.print(_summary(metrics, sigma_y), highlight=False, markup=False)
    console.print(
        f"wrote {len(y)} restorations ({result.seconds_per_image:.2f} s per image) to {out}/: {', '.join(written)}",
        highlight=False,
        markup=False,
    )


def _summary(metrics: dict, sigma_y: float) -> str:
    """PSNR/SSIM (and FID, with a caveat below FID_MIN_N images) of the mean and of one sample."""
    parts = [
        f"{key} PSNR {metrics[key]['psnr']:.2f} dB SSIM {metrics[key]['ssim']:.3f}"
        + (f" FID {metrics[key]['fid']:.1f}" if "fid" in metrics[key] else "")
        for key in ("mean", "sample")
    ]
    text = ", ".join(parts) + f"; consistency {metrics['mean']['consistency']:.4f} (sigma_y {sigma_y:g})"
    if "fid" in metrics["mean"] and metrics["n"] < FID_MIN_N:
        text += f" (FID of {metrics['n']} images < {FID_MIN_N}: biased high, compare only at equal n)"
    return text
