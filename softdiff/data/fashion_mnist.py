"""Fashion-MNIST from the four standard IDX ``.gz`` files (Debian: ``dataset-fashion-mnist``)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from .datasets import ImageData, register_dataset

__all__ = ["load_fashion_mnist", "FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# the label file's classes, in index order (Zalando's names)
FASHION_MNIST_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_HOW_TO_GET = (
    "install it with `apt-get install dataset-fashion-mnist` or pass --data-dir with the four Fashion-MNIST .gz files"
)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable IDX file ({err}); {_HOW_TO_GET}") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 8:
        raise ValueError(f"{path} is not a uint8 IDX file; {_HOW_TO_GET}")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated ({body.size} of {int(np.prod(dims))} values); {_HOW_TO_GET}")
    return body.reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.exists():
            return candidate
    raise ValueError(f"Fashion-MNIST file {stem}.gz not found in {directory}; {_HOW_TO_GET}")


def load_fashion_mnist(split: str = "train", data_dir: Path | None = None) -> ImageData:
    """70,000 28x28 grey images (60k train, 10k test) with their 10 class labels."""
    directory = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
    images_file, labels_file = _FILES[split]
    images = _read_idx(_find(directory, images_file))
    labels = _read_idx(_find(directory, labels_file))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"Fashion-MNIST {split} images and labels disagree in count in {directory}")
    return ImageData(
        torch.from_numpy(images.copy())[:, None],
        torch.from_numpy(labels.astype(np.int64)),
        "fashion-mnist",
        FASHION_MNIST_CLASSES,
    )


register_dataset("fashion-mnist", load_fashion_mnist)
