"""A decoded folder is cached on disk, read back only while the files are unchanged, and never required."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import softdiff.data.folder as folder_module
from softdiff.data import load_dataset
from softdiff.data.folder_cache import folder_cache_file


@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOFTDIFF_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{i}.png")
    return tmp_path / "photos"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every image file the loader decodes."""
    calls: list[Path] = []
    real = folder_module.open_image

    def spy(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(folder_module, "open_image", spy)
    return calls


def load(root: Path):
    return load_dataset("folder", data_dir=root, image_size=8)


def same(a, b) -> bool:
    return (
        torch.equal(a.images, b.images)
        and torch.equal(a.labels, b.labels)
        and (a.classes, a.notes) == (b.classes, b.notes)
    )


def test_the_second_load_reads_the_cache_and_gives_the_same_data(photos: Path, opened: list[Path]) -> None:
    first = load(photos)
    assert len(opened) == 6 and first.classes == ("cat", "dog") and first.notes  # resized: a note
    second = load(photos)
    assert len(opened) == 6 and same(first, second)  # nothing decoded the second time
    assert len(list((photos.parent / "cache" / "folders").glob("*.safetensors"))) == 1


def test_a_changed_added_or_removed_file_is_decoded_again(photos: Path, opened: list[Path]) -> None:
    load(photos)
    target = photos / "dog" / "1.png"
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(target)
    os.utime(target, ns=(1, 1))  # a new time as well as new bytes
    changed = load(photos)
    assert len(opened) == 12 and int(changed.images[4].max()) == 0  # the edit is seen
    (photos / "cat" / "0.png").unlink()
    assert len(load(photos)) == 5 and len(opened) == 17


def test_a_damaged_cache_is_decoded_again_and_an_unwritable_one_is_skipped(
    photos: Path, opened: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = load(photos)
    (cached,) = (photos.parent / "cache" / "folders").glob("*.safetensors")
    cached.write_bytes(b"not a safetensors file")
    again = load(photos)
    assert len(opened) == 12 and same(first, again)
    assert load(photos) is not None and len(opened) == 12  # rewritten, so read again
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("SOFTDIFF_CACHE", str(blocked))
    assert same(load(photos), first)  # no cache to write: the data still loads


def test_the_cache_can_be_turned_off(photos: Path, opened: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTDIFF_FOLDER_CACHE", "0")
    load(photos)
    load(photos)
    assert len(opened) == 12 and not (photos.parent / "cache" / "folders").exists()
    assert folder_cache_file("x").name == "x.safetensors"
