"""``softdiff sample``: draw images from a trained run with any sampler; PNG grid + ``.npz``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
import typer
from PIL import Image

from ..conditioning import DEFAULT_GUIDANCE, Guided, check_guidance, guided_calls, resolve_classes
from ..distributed import distributed, is_main_process, relaunch, resolve_device
from ..imageio import atomic_write_bytes, make_grid, save_grid, to_uint8
from ..resources import writable_dir
from ..samplers import (
    DEFAULT_STEPS,
    GRIDS,
    Trajectory,
    default_sampler,
    generate_sharded,
    get,
    names,
    nfe,
    parse_grid,
)
from ..samplers.grids import MAX_STEPS
from ..seeding import MAX_SEED
from ..train import load_run, read_checkpoint
from ..train.autogrids import run_grid
from ..train.corruption import plugin_pythonpath
from .common import SAMPLING_PLUGIN_HELP, THREADS_HELP, console, import_named_plugins, set_threads, user_errors

TRAJECTORY_SAMPLES = 4
TRAJECTORY_COLUMNS = 10


def _save_png(image: torch.Tensor, path: Path) -> None:
    """One ``(C, H, W)`` image in [-1, 1] as a PNG of its own size."""
    pixels = make_grid(image[None], nrow=1, pad=0).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _trajectory_strip(path: Trajectory, images: torch.Tensor, out: Path, scale: int) -> None:
    """Per sample two rows, ``x_t`` then ``x0_hat``, at up to 10 steps; the final image ends both rows."""
    steps = path.x.shape[1]
    picks = torch.linspace(0, steps - 1, min(steps, TRAJECTORY_COLUMNS)).round().long().unique()
    rows = []
    for k in range(path.x.shape[0]):
        final = images[k : k + 1]
        rows += [torch.cat([path.x[k, picks], final]), torch.cat([path.x0_hat[k, picks], final])]
    save_grid(torch.cat(rows), out, nrow=len(picks) + 1, scale=scale)


@user_errors
def sample(
    ckpt: Path = typer.Option(..., "--ckpt", help="Run folder (latest checkpoint) or one checkpoint folder."),
    sampler: str | None = typer.Option(
        None,
        "--sampler",
        "-s",
        help=f"One of: {', '.join(names())} (default: the best measured for the run's kind of corruption: "
        "for blur-like operators dpmpp_2m_sde up to 10 steps, naive up to 40, momentum past that; "
        "dpmpp_2m_sde for masks and noise only).",
    ),
    steps: int = typer.Option(
        DEFAULT_STEPS, "--steps", min=1, max=MAX_STEPS, help="Sampler steps (network calls; Heun: 2 * steps - 1)."
    ),
    grid: str = typer.Option(
        "uniform",
        "--grid",
        help=f"Time grid: {', '.join(GRIDS)}, NAME:STOP (e.g. edm:levels), NAME:key=value (e.g. edm:rho=5) or a "
        "level JSON file. auto is optimised "
        "for the sampler on the run's Gaussian data fit (operators diagonal in the DCT or pixel basis).",
    ),
    n: int | None = typer.Option(
        None, "-n", min=1, help="Number of images (default 64); with --class, images per class (default 8)."
    ),
    classes: list[str] = typer.Option(
        [],
        "--class",
        help="A class of a class-conditional run, by name or index (repeatable); all: every class. The grid has one "
        "row per requested class.",
    ),
    guidance: float | None = typer.Option(
        None,
        "--guidance",
        help=f"Classifier-free guidance weight w >= 0 on x0_hat: x0_u + w (x0_c - x0_u); 0 unconditional, 1 "
        f"conditional, > 1 guided (2 network calls per step) (default: {DEFAULT_GUIDANCE:g}; needs --class).",
    ),
    out: Path = typer.Option(Path("samples"), "--out", "-o", help="Output folder."),
    seed: int = typer.Option(
        0, "--seed", min=0, max=MAX_SEED, help="Sample i depends only on (seed, i), never on the batch size."
    ),
    batch_size: int = typer.Option(256, "--batch-size", "-b", min=1, help="Images per batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    raw: bool = typer.Option(False, "--raw", help="Use the raw weights instead of the EMA weights."),
    png: bool = typer.Option(False, "--png", help="Also write each image as DIR/png/NNNNNN.png."),
    trajectory: bool = typer.Option(False, "--trajectory", help="Also write trajectory.png (x_t, x0_hat by step)."),
    float_samples: bool = typer.Option(
        False,
        "--float",
        help="Store float32 samples instead of uint8, clamped to the data range [-1, 1] as the PNGs are "
        "(a sampler's last step can overshoot it a little).",
    ),
    scale: int = typer.Option(2, "--scale", min=1, max=64, help="Enlarge the PNG grids by this factor."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    threads: int | None = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    nproc: int | None = typer.Option(
        None, "--nproc", min=1, help="Re-launch under torchrun with this many processes on this machine."
    ),
    plugins: list[str] = typer.Option([], "--plugin", help=SAMPLING_PLUGIN_HELP),
) -> None:
    """Sample images from a trained run: writes DIR/grid.png and DIR/samples.npz.

    Under torchrun (or with --nproc) the ranks share the samples and rank 0 writes them:
    the images are identical to a single process's with the same seed.
    """
    set_threads(threads)
    import_named_plugins(plugins)
    if sampler is not None:
        get(sampler)  # an unknown name fails before the checkpoint is read
    parse_grid(grid)
    if guidance is not None:
        check_guidance(guidance)
        if not classes:
            raise ValueError(
                "--guidance needs --class: it weighs the class-conditional model against the unconditional"
            )
    weight = DEFAULT_GUIDANCE if guidance is None else guidance
    if nproc is not None:  # the workers import the run's plugins from where this process finds them
        roots = plugin_pythonpath(read_checkpoint(ckpt).config.corruption)
        raise typer.Exit(relaunch("sample", nproc, pythonpath=roots))
    target = resolve_device(device)
    if is_main_process():
        writable_dir(out, "--out folder")  # before minutes of sampling
    with distributed(target) as ctx:
        run = load_run(ckpt, device=ctx.device, ema=not raw)
        labels = resolve_classes(classes, run.classes) if classes else None
        per_class = n if n is not None else (8 if labels else 64)
        n = per_class * len(labels) if labels else per_class
        cond = torch.tensor(labels).repeat_interleave(per_class) if labels else None
        denoiser = Guided(run.denoiser, weight) if labels else run.denoiser
        sampler = sampler if sampler is not None else default_sampler(run.process.operator, steps)
        # a grid this run cannot use (or a level file made for another corruption) fails before sampling
        ts = run_grid(run, grid, sampler, steps)
        keep = min(n, TRAJECTORY_SAMPLES) if trajectory else 0
        kwargs = dict(sampler=sampler, steps=steps, grid=ts, seed=seed, batch_size=batch_size, device=ctx.device)
        kwargs.update(trajectory=keep, progress=progress)
        if cond is not None:
            kwargs["cond"] = cond
        result = generate_sharded(ctx, denoiser, run.process, run.prior, n, **kwargs)
    if result is None:  # not rank 0: rank 0 writes the outputs
        return
    images, path = result if keep else (result, None)

    out.mkdir(parents=True, exist_ok=True)
    save_grid(images, out / "grid.png", scale=scale, **({"nrow": per_class} if labels else {}))
    meta = {
        "sampler": sampler,
        "steps": steps,
        "grid": grid,
        "times": [round(t, 6) for t in ts.tolist()],
        "nfe": nfe(sampler, steps),
        "seed": seed,
        "checkpoint": str(run.path),
        "checkpoint_step": run.step,
        "weights": "raw" if raw else "ema",
        "corruption": run.config.corruption.spec,
    }
    if labels:  # only for conditional samples: an unconditional run's file stays what it was
        assert cond is not None and run.classes is not None
        meta["nfe"] = nfe(sampler, steps) * guided_calls(weight)
        meta.update(guidance=weight, labels=cond.tolist(), classes=[run.classes[k] for k in labels])
    buffer = io.BytesIO()
    stored = images.float().clamp(-1, 1).numpy() if float_samples else to_uint8(images).numpy()  # the data range
    np.savez_compressed(buffer, images=stored, meta=json.dumps(meta), **{k: np.asarray(v) for k, v in meta.items()})
    atomic_write_bytes(out / "samples.npz", buffer.getvalue())
    if png:
        for i, image in enumerate(images):
            _save_png(image, out / "png" / f"{i:06d}.png")
    if path is not None:
        _trajectory_strip(path, images, out / "trajectory.png", scale)
    written = ["grid.png", "samples.npz"] + (["png/"] if png else []) + (["trajectory.png"] if path is not None else [])
    guided = f", classes {', '.join(meta['classes'])} at guidance {weight:g}" if labels else ""
    console.print(
        f"wrote {n} images{guided} ({sampler}, {steps} steps, {grid} grid, {meta['nfe']} network calls, "
        f"{meta['weights']} weights of step {run.step}) to {out}/: {', '.join(written)}"
    )
