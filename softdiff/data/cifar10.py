"""CIFAR-10 from the *binary* version (``data_batch_1.bin`` ... ``test_batch.bin``).

The more common "python version" stores pickles; unpickling runs arbitrary code, so it is
deliberately not supported. Each binary record is 1 label byte + 3072 pixel bytes
(1024 red, 1024 green, 1024 blue, row-major 32x32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .datasets import ImageData, register_dataset

__all__ = ["load_cifar10"]

_RECORD = 1 + 3 * 32 * 32
_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
_HOW_TO_GET = (
    "download the CIFAR-10 *binary version* (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html), "
    "extract it and pass --data-dir pointing at cifar-10-batches-bin (the python/pickle version is not supported: "
    "unpickling is unsafe)"
)


# the label byte's classes, in index order (batches.meta.txt)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _folder(data_dir: Path | None) -> Path:
    if data_dir is None:
        raise ValueError(f"CIFAR-10 needs --data-dir; {_HOW_TO_GET}")
    directory = Path(data_dir)
    nested = directory / "cifar-10-batches-bin"
    return nested if nested.is_dir() else directory


def load_cifar10(split: str = "train", data_dir: Path | None = None) -> ImageData:
    """50,000 train / 10,000 test 32x32 RGB images with their 10 class labels."""
    directory = _folder(data_dir)
    records = []
    for name in _FILES[split]:
        path = directory / name
        if not path.is_file():
            pickled = (directory / name.removesuffix(".bin")).is_file()
            hint = " (found the python/pickle version, which is not supported)" if pickled else ""
            raise ValueError(f"CIFAR-10 file {name} not found in {directory}{hint}; {_HOW_TO_GET}")
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % _RECORD:
            raise ValueError(
                f"{path} is not a CIFAR-10 binary batch ({raw.size} bytes, not a multiple of {_RECORD}); {_HOW_TO_GET}"
            )
        records.append(raw.reshape(-1, _RECORD))
    table = np.concatenate(records)
    images = torch.from_numpy(table[:, 1:].reshape(-1, 3, 32, 32).copy())
    labels = torch.from_numpy(table[:, 0].astype(np.int64))
    if bool((labels > 9).any()):
        raise ValueError(f"CIFAR-10 labels in {directory} are not in 0..9: not a CIFAR-10 binary batch; {_HOW_TO_GET}")
    return ImageData(images, labels, "cifar10", CIFAR10_CLASSES)


register_dataset("cifar10", load_cifar10)
