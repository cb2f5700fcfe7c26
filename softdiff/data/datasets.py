"""A minimal image data set type and the loader registry used by the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..registry import Registry

__all__ = ["ImageData", "load_dataset", "register_dataset", "DATASETS"]


@dataclass(frozen=True)
class ImageData:
    """Images kept as uint8 ``(N, C, H, W)`` (4x less memory), converted per batch.

    ``labels`` (``(N,)`` int64 class indices) and ``classes`` (their names, index order)
    are what class-conditional training reads; a data set without labels has neither.
    """

    images: Tensor
    labels: Tensor | None = None
    name: str = "images"
    classes: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()  # what loading changed in the files (resized, converted), for the user to read

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"ImageData needs a uint8 (N, C, H, W) tensor, got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.classes is not None and self.labels is None:
            raise ValueError("ImageData has class names but no labels")
        if self.labels is not None and self.classes is not None and len(self.labels):
            low, high = int(self.labels.min()), int(self.labels.max())
            if low < 0 or high >= len(self.classes):
                raise ValueError(f"labels {low}..{high} do not index the {len(self.classes)} class names")

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The class names; the indices as names when there are labels without names (None: unlabelled)."""
        if self.labels is None:
            return None
        if self.classes is not None:
            return self.classes
        return tuple(str(i) for i in range(int(self.labels.max()) + 1 if len(self.labels) else 0))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> Tensor:
        return to_float(self.images[index])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return c, h, w

    def batch(self, index: Tensor | slice) -> Tensor:
        """Float batch in [-1, 1] for the given indices."""
        return to_float(self.images[index])

    def subset(self, n: int, seed: int = 0) -> ImageData:
        """A reproducible random subset of ``n`` images (all of them when ``n >= len``)."""
        if n >= len(self):
            return self
        index = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        labels = self.labels[index] if self.labels is not None else None
        return ImageData(self.images[index], labels, self.name, self.classes, self.notes)


def to_float(images: Tensor) -> Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


Loader = Callable[..., ImageData]
DATASETS: Registry[Loader] = Registry("dataset", dashes=True)
SIZED: set[str] = set()  # loaders that take ``size=`` and ``channels=`` (image folders)
GENERATED: set[str] = set()  # data sets made in memory, that read no files (a --data-dir would be ignored)


def register_dataset(
    name: str, loader: Loader, *, sized: bool = False, generated: bool = False, replace: bool = False
) -> None:
    """Make ``name`` a data set: ``loader(split, data_dir)`` returns :class:`ImageData`.

    ``sized``: the loader also takes ``size=`` and ``channels=`` (images of any size, resized);
    ``generated``: it reads no files (``--data-dir`` is refused). A taken name is an error
    unless ``replace=True``.
    """
    DATASETS.register(name, loader, replace=replace)
    for flag, names in ((sized, SIZED), (generated, GENERATED)):
        (names.add if flag else names.discard)(name)


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    *,
    image_size: int | None = None,
    channels: int | None = None,
) -> ImageData:
    """Load a registered data set by name (``fashion-mnist``, ``cifar10``, ``folder``, ``synthetic``).

    ``image_size`` and ``channels`` choose the size of data sets read from arbitrary images
    (``folder``); fixed-size data sets only check that they match.
    """
    loader = DATASETS.get(name)  # an unknown name fails here, listing the known ones
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(data_dir) if data_dir is not None else None
    if name in GENERATED and directory is not None:
        raise ValueError(f"the {name!r} data set is generated in memory and reads no files; drop --data-dir")
    if name in SIZED:
        options = {k: v for k, v in (("size", image_size), ("channels", channels)) if v is not None}
        return loader(split, directory, **options)
    data = loader(split, directory)
    c, h, w = data.shape
    if (image_size is not None and image_size != h) or (channels is not None and channels != c):
        asked = f"{image_size or h}x{image_size or w} with {channels or c} channel(s)"
        raise ValueError(
            f"dataset {name!r} has fixed {h}x{w} images with {c} channel(s), not the {asked} asked for "
            "(--image-size/--channels or a config's data.image_size/data.channels); only the 'folder' data set "
            "is resized"
        )
    return data
