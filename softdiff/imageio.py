"""Image files in and out: PNG grids of [-1, 1] batches, and single images as tensors."""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .resources import refuse_special

__all__ = ["to_uint8", "make_grid", "save_grid", "load_image", "atomic_write_bytes", "open_image", "convert_image"]

WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16-bit grey PNGs, 32-bit ints and floats
GREY_MODES = ("1", "L", "LA", "La")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] floats -> uint8, clipping out-of-range values."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def make_grid(images: Tensor, nrow: int | None = None, pad: int = 2) -> Tensor:
    """Tile ``(N, C, H, W)`` images row by row into one ``(C, H', W')`` uint8 image."""
    if images.ndim != 4:
        raise ValueError(f"make_grid needs (N, C, H, W) images, got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=torch.uint8)
    pixels = to_uint8(images)
    for i in range(n):
        r, k = divmod(i, nrow)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = pixels[
            i
        ]
    return grid


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file.

    A special file or a link at ``path`` is refused (``ValueError``), never replaced.
    """
    path = refuse_special(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Save a PNG grid of [-1, 1] images (``scale`` enlarges small images with nearest-neighbour)."""
    grid = make_grid(images, nrow).permute(1, 2, 0).numpy()
    picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def open_image(path: str | Path) -> Image.Image:
    """Open and decode an image file; a missing, special, unreadable or decompression-bomb file is a ``ValueError``.

    Pillow only warns between ``Image.MAX_IMAGE_PIXELS`` and twice that; here both are refused,
    so a small file that expands to gigabytes of pixels never gets decoded.
    """
    if Path(path).exists() and not Path(path).is_file():  # a FIFO would block the read forever
        what = "a folder" if Path(path).is_dir() else "not a regular file (a device, FIFO or socket)"
        raise ValueError(f"image {path} is {what}; give an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(path)
            picture.load()
    except FileNotFoundError:
        raise ValueError(f"image {path} does not exist") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = Image.MAX_IMAGE_PIXELS
        raise ValueError(f"{path} has too many pixels to decode safely (more than {limit:,}); resize it") from None
    except OSError as err:  # incl. PIL.UnidentifiedImageError
        raise ValueError(f"{path} is not a readable image ({err})") from None
    _refuse_mode(picture, path)
    return picture


def _png_bit_depth(path: str | Path) -> int | None:
    """The bit depth in a PNG's header; Pillow reads a 16-bit RGB PNG as 8-bit RGB without a word."""
    with open(path, "rb") as f:
        head = f.read(25)
    return head[24] if len(head) == 25 and head.startswith(_PNG_SIGNATURE) else None


def _refuse_mode(picture: Image.Image, path: str | Path) -> None:
    """Refuse what no conversion reads honestly: 16-bit levels (softdiff's data are 8-bit) and CMYK.

    Dropping 8 bits of a 16-bit image or guessing a CMYK file's colours without its colour
    profile would change the data silently; the user's own converter does it knowingly.
    """
    if picture.mode in WIDE_MODES or _png_bit_depth(path) == 16:
        raise ValueError(
            f"{path} is a {'16-bit' if picture.mode != 'F' else 'floating-point'} image ({picture.mode}); "
            "softdiff reads 8-bit images: convert it first (e.g. `magick IN -depth 8 OUT.png`)"
        )
    if picture.mode == "CMYK":
        raise ValueError(
            f"{path} is a CMYK image, whose colours depend on a colour profile softdiff does not apply: "
            "convert it to RGB first (e.g. `magick IN -colorspace sRGB OUT.png`)"
        )


def convert_image(picture: Image.Image, mode: str) -> Image.Image:
    """``picture.convert(mode)`` for the 8-bit modes :func:`open_image` lets through (grey, RGB(A), palette)."""
    return picture if picture.mode == mode else picture.convert(mode)


def load_image(path: str | Path, channels: int | None = None, size: tuple[int, int] | None = None) -> Tensor:
    """Read an image file as a ``(1, C, H, W)`` float tensor in [-1, 1]."""
    picture = open_image(path)
    mode = {1: "L", 3: "RGB"}.get(channels or (1 if picture.mode in GREY_MODES else 3))
    picture = convert_image(picture, mode)
    if size is not None:
        picture = picture.resize((size[1], size[0]), Image.BICUBIC)
    array = np.asarray(picture, dtype=np.uint8)
    array = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
