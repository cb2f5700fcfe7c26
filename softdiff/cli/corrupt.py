"""``softdiff corrupt``: a PNG strip of images at increasing t, to look at a corruption."""

from __future__ import annotations

from pathlib import Path

import torch
import typer
from PIL import Image

from ..corrupt import check_structure
from ..data import DATASETS, load_dataset
from ..imageio import load_image, save_grid
from ..resources import writable_file
from ..schedule import retime
from ..seeding import MAX_SEED
from ..train import read_checkpoint
from ..train.corruption import rebuild_process
from .common import IMAGE_CHANNELS_HELP, IMAGE_SIZE_HELP, console, corruption_config, user_errors

MAX_SIDE = 2048  # the exact DCT blur builds side x side matrices per image: larger images are resized first
MAX_LEVELS = 256
MAX_SCALE = 64


@user_errors
def corrupt(
    source: str = typer.Argument(..., help="An image file, or a data set name (fashion-mnist, synthetic, ...)."),
    corruption: str | None = typer.Option(
        None, "--corruption", "-c", help="Operator spec: noise, blur, mask, blur+mask, mymod:Class, ... (default: blur)"
    ),
    config_file: Path | None = typer.Option(
        None, "--config", help="Take the [corruption] table of a run config file (or of a run's config.json)."
    ),
    set_fields: list[str] = typer.Option(
        [], "--set", help="Plugin arguments and corruption settings: --set corruption.params.NAME=VALUE (repeatable)."
    ),
    ckpt: Path | None = typer.Option(
        None, "--ckpt", help="Show the process of a trained run (its operator, noise and levels) instead."
    ),
    levels: int = typer.Option(
        8, "--levels", "-k", min=2, max=MAX_LEVELS, help="Number of times from t=0 to t=1 (columns)."
    ),
    n: int = typer.Option(4, "-n", min=1, help="Images from a data set (rows)."),
    no_noise: bool = typer.Option(False, "--no-noise", help="Show C_t x only, without the s_t noise."),
    level_file: Path | None = typer.Option(None, "--level-file", help="Level table JSON from `softdiff schedule`."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Folder holding the data set files."),
    image_size: int | None = typer.Option(None, "--image-size", min=4, help=IMAGE_SIZE_HELP),
    image_channels: int | None = typer.Option(None, "--channels", min=1, help=IMAGE_CHANNELS_HELP),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="Seed for the images picked and the noise."),
    scale: int = typer.Option(3, min=1, max=MAX_SCALE, help="Enlarge the PNG by this factor."),
    out: Path = typer.Option(Path("corruption.png"), "--out", "-o", help="Where to write the PNG strip."),
) -> None:
    """Write a PNG strip of images at increasing corruption t (rows: images, columns: t)."""
    writable_file(out, "--out PNG")
    if ckpt is not None:  # the run's own process; a bad spec or checkpoint fails before any image is read
        if corruption is not None or level_file is not None or set_fields or config_file is not None:
            raise ValueError("--ckpt shows the run's own process; drop --corruption, --config, --set and --level-file")
        run = read_checkpoint(ckpt).config
        config = run.corruption
        config.plugins()  # a plugin that cannot be imported fails before any image is read
    else:
        config = corruption_config(corruption, set_fields, config_file)
    if Path(source).is_file():
        if data_dir is not None:
            raise ValueError(f"--data-dir is for data sets; {source} is an image file")
        if image_size is not None:
            raise ValueError(f"--image-size is for data sets; {source} is shown at its own size")
        if image_channels not in (None, 1, 3):
            raise ValueError(f"--channels is 1 (grey) or 3 (RGB), got {image_channels}")
        x0 = load_image(source, channels=image_channels)
        if max(x0.shape[-2:]) > MAX_SIDE:
            raise ValueError(
                f"{source} is {x0.shape[-1]}x{x0.shape[-2]} pixels; corrupt takes images up to {MAX_SIDE} "
                "pixels a side (resize it first)"
            )
    elif source in DATASETS:
        data = load_dataset(source, "test", data_dir, image_size=image_size, channels=image_channels)
        if n > len(data):
            raise ValueError(f"-n {n} is more than the {len(data)} images of the {source} test split")
        x0 = data.subset(n, seed).batch(slice(None))
    else:
        raise ValueError(f"{source!r} is neither an image file nor a data set ({', '.join(sorted(DATASETS))})")
    pixels = (x0.shape[0] * (x0.shape[-2] + 2) + 2) * (levels * (x0.shape[-1] + 2) + 2) * scale**2
    if pixels > Image.MAX_IMAGE_PIXELS:
        raise ValueError(
            f"the strip would have {pixels:,} pixels, more than image readers accept ({Image.MAX_IMAGE_PIXELS:,}); "
            "lower --scale, --levels or -n"
        )
    if level_file is not None:
        dataset = source if source in DATASETS and not Path(source).is_file() else None
        config = retime(config, level_file, dataset=dataset, shape=tuple(x0.shape[1:]))
    if ckpt is not None:  # the operator the run trained with, checked against its record
        process = rebuild_process(run, (x0.shape[-2], x0.shape[-1]))
    else:
        process = config.build((x0.shape[-2], x0.shape[-1]))
    check_structure(process.operator, x0)  # a plugin's wrong shape or NaN: one line before the strip
    ts = torch.linspace(0, 1, levels)
    g = torch.Generator().manual_seed(seed)
    columns = []
    for t in ts:
        xt = process.C(x0, float(t)) if no_noise else process.corrupt(x0, float(t), generator=g)
        columns.append(xt)
    strip = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: image i, level k
    save_grid(strip, out, nrow=levels, scale=scale)
    retimed = ", selected levels" if config.levels is not None else ""
    console.print(f"wrote {out} ({x0.shape[0]} images x {levels} levels of {config.spec!r}{retimed}, t = 0 .. 1)")
