"""Image-folder and CIFAR-10 (binary) loaders on tiny generated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from softdiff.data import load_cifar10, load_dataset, load_image_folder


def test_image_folder_crops_resizes_and_converts(tmp_path: Path) -> None:
    wide = np.zeros((20, 40, 3), dtype=np.uint8)
    wide[:, 10:30] = 255  # the centre square is white, the sides black
    Image.fromarray(wide).save(tmp_path / "a.png")
    sub = tmp_path / "more"
    sub.mkdir()
    Image.fromarray(np.full((8, 8), 100, dtype=np.uint8)).save(sub / "b.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    data = load_image_folder(tmp_path, size=10, channels=3)
    assert data.images.shape == (2, 3, 10, 10) and data.images.dtype == torch.uint8
    assert data.images[0].min() >= 250  # the crop kept only the white centre
    grey = load_dataset("folder", "train", tmp_path, image_size=6, channels=1)
    assert grey.shape == (1, 6, 6) and abs(int(grey.images[1].float().mean()) - 100) <= 2
    assert grey.batch(slice(None)).min() >= -1 and grey.batch(slice(None)).max() <= 1


def test_image_folder_uses_the_split_subfolder_and_reports_missing_data(tmp_path: Path) -> None:
    for split, value in (("train", 10), ("test", 200)):
        (tmp_path / split).mkdir()
        Image.fromarray(np.full((5, 5), value, dtype=np.uint8)).save(tmp_path / split / "x.png")
    assert int(load_image_folder(tmp_path, 5, 1, "test").images.max()) == 200
    with pytest.raises(ValueError, match="--data-dir"):
        load_image_folder(tmp_path / "nothing", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        load_image_folder(tmp_path / "empty", 8)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image_folder(tmp_path / "broken", 8)


def _cifar_batch(path: Path, labels: list[int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    np.concatenate([np.array(labels, dtype=np.uint8)[:, None], pixels], 1).tofile(path)
    return pixels


def test_cifar10_binary_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    first = _cifar_batch(folder / "data_batch_1.bin", [3, 7], 0)
    for i in range(2, 6):
        _cifar_batch(folder / f"data_batch_{i}.bin", [i], i)
    _cifar_batch(folder / "test_batch.bin", [9, 0, 1], 9)
    train = load_cifar10("train", tmp_path)  # the parent folder works too
    assert train.images.shape == (6, 3, 32, 32) and train.labels.tolist() == [3, 7, 2, 3, 4, 5]
    # channel-major records: the first 1024 bytes are the red plane
    assert torch.equal(train.images[0, 0].flatten(), torch.from_numpy(first[0, :1024]))
    assert torch.equal(train.images[1, 2].flatten(), torch.from_numpy(first[1, 2048:]))
    assert len(load_dataset("cifar10", "test", folder)) == 3


def test_cifar10_missing_or_pickled_data_says_how_to_get_the_binary_version(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="binary version"):
        load_cifar10("train", tmp_path)
    with pytest.raises(ValueError, match="needs --data-dir"):
        load_cifar10("train", None)
    (tmp_path / "test_batch").write_bytes(b"pickle bytes")
    with pytest.raises(ValueError, match="python/pickle version, which is not supported"):
        load_cifar10("test", tmp_path)
    (tmp_path / "test_batch.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(ValueError, match="not a CIFAR-10 binary batch"):
        load_cifar10("test", tmp_path)


def test_fixed_size_data_sets_refuse_a_different_size() -> None:
    with pytest.raises(ValueError, match="fixed 16x16"):
        load_dataset("synthetic", "train", image_size=32)
