"""What a folder of a user's own photos may hold: mixed sizes and modes are converted, bad files are one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from softdiff.cli.app import app
from softdiff.data import load_image_folder

runner = CliRunner()


def _mixed(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 30, 3)) * 255).astype(np.uint8)).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(np.full((20, 20), 32768, dtype=np.uint16)).save(folder / "grey16.png")  # mid-grey in 16 bits
    Image.fromarray((rng.random((25, 50, 4)) * 255).astype(np.uint8)).save(folder / "rgba.png")
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).convert("P").save(folder / "palette.png")
    return folder


def test_mixed_sizes_and_modes_are_cropped_resized_and_converted(tmp_path: Path) -> None:
    data = load_image_folder(_mixed(tmp_path / "photos"), size=16, channels=3)
    assert data.images.shape == (4, 3, 16, 16)
    grey16 = data.images[sorted(p.name for p in (tmp_path / "photos").iterdir()).index("grey16.png")]
    assert int(grey16.min()) == int(grey16.max()) == 128  # 32768 / 257, not clipped to 255


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
