"""The corruption strip of a run's own process: what the model learned to undo, from config.json alone.

Rows are test images, columns times t = 0 .. 1 of the run's operator, noise and levels,
exactly as ``softdiff corrupt --ckpt RUN`` draws them (the same rebuild, checked against
the operator the run recorded).
"""

from __future__ import annotations

import io

import torch
from PIL import Image

from ..data import load_dataset
from ..imageio import make_grid
from ..train import RunConfig
from ..train.corruption import rebuild_process

__all__ = ["corruption_strip", "STRIP_LEVELS", "STRIP_IMAGES"]

STRIP_LEVELS = 8
STRIP_IMAGES = 4
STRIP_SCALE = 3


def corruption_strip(config: RunConfig, seed: int = 0) -> tuple[bytes, list[float]]:
    """PNG bytes of ``STRIP_IMAGES`` test images at ``STRIP_LEVELS`` times, and those times.

    ``ValueError`` (or ``OSError``) when the data set or the run's operator cannot be loaded here.
    """
    data = config.data
    images = load_dataset(data.dataset, "test", data.data_dir, image_size=data.image_size, channels=data.channels)
    x0 = images.subset(min(STRIP_IMAGES, len(images)), seed).batch(slice(None))
    process = rebuild_process(config, (x0.shape[-2], x0.shape[-1]))
    ts = torch.linspace(0, 1, STRIP_LEVELS)
    g = torch.Generator().manual_seed(seed)
    columns = [process.corrupt(x0, float(t), generator=g) for t in ts]
    strip = torch.stack(columns, dim=1).flatten(0, 1)
    if not torch.isfinite(strip).all():
        raise ValueError("the run's process gave non-finite corrupted images")
    pixels = make_grid(strip, nrow=STRIP_LEVELS).permute(1, 2, 0).numpy()
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    picture = picture.resize((picture.width * STRIP_SCALE, picture.height * STRIP_SCALE), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue(), [float(t) for t in ts]
