"""Folder data sets (issue 25 item 3): channels come from the images, and a run records where its data is.

A newcomer's grey PNGs loaded as 3 channels, and ``eval`` then refused its (N, 3, 28, 28)
input; a relative ``--data-dir`` was stored relative, so ``eval`` from another folder
looked for the data in the wrong place.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from softdiff.data import load_image_folder
from softdiff.train import RunConfig

runner = CliRunner()


def _images(folder: Path, n: int, colour: str, side: int = 28) -> Path:
    """``n`` random images: grey PNGs, RGB PNGs, or RGB PNGs whose three channels are equal."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (folder / split).mkdir(parents=True)
        for i in range(n):
            grey = rng.integers(0, 256, (side, side), dtype=np.uint8)
            if colour == "grey":
                pixels = grey
            elif colour == "grey-as-rgb":
                pixels = np.stack([grey] * 3, -1)
            else:
                pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / split / f"{i}.png")
    return folder


@pytest.mark.parametrize(("colour", "channels"), [("grey", 1), ("grey-as-rgb", 1), ("rgb", 3)])
def test_a_folder_has_the_channels_of_its_images(tmp_path: Path, colour: str, channels: int) -> None:
    data = load_image_folder(_images(tmp_path, 3, colour), size=8)
    assert data.shape == (channels, 8, 8)


def test_one_colour_image_makes_the_folder_rgb_and_grey_ones_repeat_their_channel(tmp_path: Path) -> None:
    _images(tmp_path / "grey", 2, "grey")
    _images(tmp_path / "rgb", 1, "rgb")
    data = load_image_folder(tmp_path, size=8, split="nowhere")  # both sub-folders, searched recursively
    assert data.shape == (3, 8, 8)
    grey = data.images[0]  # "grey/test/0.png" sorts first
    assert (grey == grey[:1]).all()
    assert load_image_folder(tmp_path, size=8, channels=1, split="nowhere").shape == (1, 8, 8)  # asked for: kept


def test_a_relative_data_dir_is_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = RunConfig.model_validate({"data": {"dataset": "folder", "data_dir": "pictures"}})
    assert config.data.data_dir == str(tmp_path / "pictures")


def test_a_run_on_grey_pngs_with_a_relative_data_dir_evaluates_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softdiff.cli import app

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    _images(work / "pictures", 6, "grey")
    monkeypatch.chdir(work)
    args = ["train", "--dataset", "folder", "--data-dir", "pictures", "--image-size", "28", "--steps", "2"]
    args += ["--batch-size", "4", "--width", "8", "--set", "data.prior_images=4", "--out", "run"]
    args += ["--set", "train.select_levels=false"]  # level selection (a minute here) has its own tests
    trained = runner.invoke(app, [*args, "--device", "cpu", "--threads", "1", "--no-progress"])
    assert trained.exit_code == 0, trained.output
    stored = json.loads((work / "run" / "config.json").read_text())["data"]
    assert stored["channels"] == 1 and stored["data_dir"] == str(work / "pictures")
    monkeypatch.chdir(elsewhere)
    evaluated = runner.invoke(
        app,
        ["eval", "--ckpt", str(work / "run"), "-n", "4", "--steps", "2", "--sampler", "naive", "--out", "eval"]
        + ["--device", "cpu", "--no-progress", "--threads", "1"],
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert (elsewhere / "eval" / "eval.json").is_file()
