"""Any folder of PNG/JPEG images, centre-cropped to a square and resized to one size; channels from the images.

Classes come from sub-folders: when every image lies inside a sub-folder of the (split)
folder, the sub-folders' names, sorted, are the classes and each image is labelled by the
one it is in (``folder/cat/1.png`` is class ``cat``). A flat folder, or one with images at its
top level, has no classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..imageio import GREY_MODES, convert_image, open_image
from ..resources import check_memory
from .datasets import ImageData, register_dataset
from .folder_cache import cache_enabled, folder_cache_key, read_folder_cache, write_folder_cache

__all__ = ["load_image_folder", "IMAGE_SUFFIXES"]

PROGRESS_FROM = 1000  # files: below this, decoding takes seconds and a bar would only flicker

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_HOW_TO_GET = (
    "pass --data-dir pointing at a folder of .png/.jpg images "
    "(searched recursively; a train/ or test/ sub-folder is used for that split when present)"
)


def _square(picture: Image.Image, size: int) -> Image.Image:
    """Centre crop to the largest square, then resize to ``size x size`` (bicubic, antialiased)."""
    w, h = picture.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return picture.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)


def _pixels(picture: Image.Image, size: int, mode: str | None) -> np.ndarray:
    """``(size, size, C)`` uint8: in ``mode`` when given, else grey for grey files and RGB for the rest."""
    if mode is None:
        mode = "L" if picture.mode in GREY_MODES else "RGB"
    array = np.asarray(_square(convert_image(picture, mode), size), dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _derived_channels(arrays: list[np.ndarray]) -> int:
    """1 when every image is grey (a grey file, or RGB with equal channels), else 3."""
    for array in arrays:
        if array.shape[-1] == 3 and not (array == array[..., :1]).all():
            return 3
    return 1


def load_image_folder(
    directory: str | Path | None,
    size: int = 32,
    channels: int | None = None,
    split: str = "train",
    *,
    cache: bool = True,
) -> ImageData:
    """Every image under ``directory`` (or its ``split`` sub-folder) as uint8 ``(N, channels, size, size)``.

    Labelled by sub-folder when every image is in one (see the module docstring).

    ``channels=None`` derives them from the images: 1 when every image is grey (grey PNGs, or
    RGB files whose three channels are equal), else 3 (grey images then repeat their channel).
    ``cache`` keeps the decoded result on disk (:mod:`softdiff.data.folder_cache`): the next
    load of the same, unchanged files reads one file instead of decoding every image.
    """
    if directory is None:
        raise ValueError(f"the image-folder data set needs a folder; {_HOW_TO_GET}")
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"image folder {directory} does not exist; {_HOW_TO_GET}")
    if channels not in (None, 1, 3):
        raise ValueError(f"image folders are read as 1 (grey) or 3 (RGB) channels, got {channels}")
    if size < 4:
        raise ValueError(f"image size must be at least 4 pixels, got {size}")
    if (directory / split).is_dir():
        directory = directory / split
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no images found in {directory}; {_HOW_TO_GET}")
    mode = {None: None, 1: "L", 3: "RGB"}[channels]
    check_memory(len(files) * size * size * (channels or 3), f"{len(files)} images of {size}x{size}x{channels or 3}")
    key = folder_cache_key(directory, files, size, channels) if cache and cache_enabled() else None
    if key is not None:
        cached = read_folder_cache(key, len(files), size)
        if cached is not None:
            return cached
    arrays, sizes, grey = _decode(files, size, mode)
    channels = channels or _derived_channels(arrays)
    images = np.empty((len(files), size, size, channels), dtype=np.uint8)
    for i, array in enumerate(arrays):
        images[i] = array[..., :1] if channels == 1 else np.broadcast_to(array, (size, size, 3))
    labels, classes = _subfolder_labels(directory, files)
    notes = _notes(sizes, grey, size, channels)
    data = ImageData(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels, "folder", classes, notes)
    if key is not None:
        write_folder_cache(key, data)
    return data


def _decode(files: list[Path], size: int, mode: str | None) -> tuple[list[np.ndarray], list[tuple[int, int]], int]:
    """Every file decoded and squared, with its original size and whether it was grey; a bar for many files."""
    from rich.console import Console

    from ..progress import LoggedProgress

    arrays, sizes, grey = [], [], 0
    with LoggedProgress(console=Console(stderr=True), disable=len(files) < PROGRESS_FROM, transient=True) as bar:
        task = bar.add_task(f"decoding {len(files)} images (once: cached for later runs)", total=len(files))
        for path in files:
            with open_image(path) as picture:
                sizes.append(picture.size)
                grey += picture.mode in GREY_MODES
                arrays.append(_pixels(picture, size, mode))
            bar.advance(task)
    return arrays, sizes, grey


def _notes(sizes: list[tuple[int, int]], grey: int, size: int, channels: int) -> tuple[str, ...]:
    """One line per change made to the files, so mixed sizes or modes are never converted silently."""
    n, notes = len(sizes), []
    other = [s for s in sizes if s != (size, size)]
    if other:
        w, h = zip(*other, strict=True)
        span = lambda v: f"{min(v)}" if min(v) == max(v) else f"{min(v)}-{max(v)}"  # noqa: E731
        notes.append(
            f"{len(other)} of {n} images are not {size}x{size} ({span(w)}x{span(h)} px): "
            "centre-cropped to a square and resized (bicubic)"
        )
    if channels == 3 and grey:
        notes.append(f"{grey} of {n} images are grey: their channel is repeated to RGB")
    if channels == 1 and grey < n:
        notes.append(f"{n - grey} of {n} images are colour files read as grey")
    return tuple(notes)


def _subfolder_labels(directory: Path, files: list[Path]) -> tuple[torch.Tensor | None, tuple[str, ...] | None]:
    """Labels and sorted class names from the first-level sub-folders, or ``(None, None)`` for a flat folder."""
    tops = [path.relative_to(directory).parts for path in files]
    if any(len(parts) < 2 for parts in tops):
        return None, None
    classes = tuple(sorted({parts[0] for parts in tops}))
    index = {name: i for i, name in enumerate(classes)}
    return torch.tensor([index[parts[0]] for parts in tops], dtype=torch.long), classes


def _folder(split: str, data_dir: Path | None, size: int = 32, channels: int | None = None) -> ImageData:
    return load_image_folder(data_dir, size, channels, split)


register_dataset("folder", _folder, sized=True)
