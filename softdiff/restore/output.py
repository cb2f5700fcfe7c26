"""What a person looks at after ``softdiff restore``: one PNG per image and labelled strips.

A strip shows one image's columns side by side, each under its label
(degraded | sample 1 .. sample K | mean | clean). Names come from the input files, so
``shirt.png`` restores to ``restored/shirt.png`` and ``strips/shirt.png``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ..imageio import atomic_write_bytes, make_grid

__all__ = ["labelled_strip", "save_png", "output_names"]

PAD = 2
LABEL_HEIGHT = 12


def _png(picture: Image.Image, path: Path) -> None:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _picture(grid: Tensor) -> Image.Image:
    array = grid.permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def save_png(image: Tensor, path: Path, scale: int = 1) -> None:
    """One ``(C, H, W)`` image in [-1, 1] as a PNG, enlarged ``scale`` times (nearest neighbour)."""
    picture = _picture(make_grid(image[None], nrow=1, pad=0))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    _png(picture, path)


def labelled_strip(columns: Sequence[tuple[str, Tensor]], path: Path, scale: int = 1) -> None:
    """``(label, (C, H, W) image)`` pairs side by side, each label above its image, as one PNG."""
    images = torch.stack([image for _, image in columns])
    picture = _picture(make_grid(images, nrow=len(columns), pad=PAD)).convert("RGB")
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (picture.width, picture.height + LABEL_HEIGHT), "white")
    canvas.paste(picture, (0, LABEL_HEIGHT))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    width = (images.shape[-1] + PAD) * scale
    for k, (label, _) in enumerate(columns):
        text_width = draw.textlength(label, font=font)
        left = PAD * scale + k * width + max((width - PAD * scale - text_width) / 2, 0)
        draw.text((left, 0), label, fill="black", font=font)
    _png(canvas, path)


def output_names(stems: Sequence[str]) -> list[str]:
    """File names (without suffix) for the outputs: the stems, numbered where two are the same."""
    seen: dict[str, int] = {}
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
    return [stem if seen[stem] == 1 else f"{stem}-{i}" for i, stem in enumerate(stems)]
