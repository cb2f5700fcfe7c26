"""What a folder of a user's own photos may hold: mixed sizes and 8-bit modes are converted, bad files are one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from softdiff.cli.app import app
from softdiff.data import load_image_folder

runner = CliRunner()


def _mixed(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 30)) * 255).astype(np.uint8)).save(folder / "grey.png")
    Image.fromarray((rng.random((25, 50, 4)) * 255).astype(np.uint8)).save(folder / "rgba.png")
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).convert("P").save(folder / "palette.png")
    return folder


def test_mixed_sizes_and_modes_are_cropped_resized_and_converted(tmp_path: Path) -> None:
    data = load_image_folder(_mixed(tmp_path / "photos"), size=16, channels=3)
    assert data.images.shape == (3, 3, 16, 16)
    grey = data.images[sorted(p.name for p in (tmp_path / "photos").iterdir()).index("grey.png")]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # grey repeats its channel in RGB
    assert data.notes == (
        "3 of 3 images are not 16x16 (30-64x25-64 px): centre-cropped to a square and resized (bicubic)",
        "1 of 3 images are grey: their channel is repeated to RGB",
    )
    as_grey = load_image_folder(tmp_path / "photos", size=16, channels=1)
    assert as_grey.notes[1] == "2 of 3 images are colour files read as grey"


def test_train_says_what_it_did_to_a_mixed_folder(tmp_path: Path) -> None:
    args = ["train", "--dataset", "folder", "--data-dir", str(_mixed(tmp_path / "photos")), "--image-size", "16"]
    args += ["--width", "4", "--set", "model.channel_mults=[1]", "--set", "model.groups=2", "--steps", "1", "-b", "2"]
    args += ["--set", "data.prior_images=2", "--set", "train.select_levels=false", "--device", "cpu", "--no-progress"]
    result = runner.invoke(app, [*args, "--threads", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    output = result.output.replace("\n", " ")
    assert "note: 3 of 3 images are not 16x16" in output and "note: 1 of 3 images are grey" in output


def _sixteen_bit_rgb(path: Path) -> None:
    """A 48-bit RGB PNG written by hand: Pillow cannot write one, and reads it back as 8-bit RGB."""
    import struct
    import zlib

    h, w = 4, 5
    raw = b"".join(b"\x00" + bytes(range(w * 6)) for _ in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(png)


@pytest.mark.parametrize("kind", ["grey16", "rgb16", "cmyk"])
def test_a_16_bit_or_cmyk_image_is_one_error_line_naming_the_fix(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(folder / "fine.png")
    bad = folder / ("bad.jpg" if kind == "cmyk" else "bad.png")
    if kind == "grey16":
        Image.fromarray(np.full((20, 20), 32768, dtype=np.uint16)).save(bad)
    elif kind == "rgb16":
        _sixteen_bit_rgb(bad)
        assert Image.open(bad).mode == "RGB"  # what Pillow alone would silently read
    else:
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).convert("CMYK").save(bad)
    args = ["schedule", "--dataset", "folder", "--data-dir", str(folder), "--image-size", "16", "-k", "3"]
    result = runner.invoke(app, [*args, "--candidates", "6", "--out", str(tmp_path / "levels.json")])
    line = result.output.replace("\n", "")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert line.startswith(f"error: {bad} is a "), result.output
    assert ("CMYK" in line and "sRGB" in line) if kind == "cmyk" else ("16-bit" in line and "-depth 8" in line)


@pytest.mark.parametrize("content", ["nothing", "junk"])
def test_an_empty_folder_or_an_unreadable_file_is_one_error_line(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    if content == "junk":
        (folder / "broken.png").write_bytes(b"not an image")
    args = ["schedule", "--dataset", "folder", "--data-dir", str(folder), "--image-size", "16", "-k", "3"]
    result = runner.invoke(app, [*args, "--candidates", "6", "--out", str(tmp_path / "levels.json")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    expected = "error: no images found in" if content == "nothing" else f"error: {folder / 'broken.png'} is not a"
    assert result.output.replace("\n", "").startswith(expected), result.output
