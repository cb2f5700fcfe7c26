"""A colour run through the commands that read it: eval's features and restore's photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from softdiff.cli.app import app
from softdiff.corrupt import CORRUPTIONS
from softdiff.eval.extractors import INCEPTION_WEIGHTS_FILE, default_features

runner = CliRunner()
SIDE = 16


def _photos(folder: Path, n: int, side: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        paths.append(folder / f"{i}.png")
        Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8)).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two steps of a tiny U-Net on 16x16 RGB photos."""
    root = tmp_path_factory.mktemp("colour")
    _photos(root / "photos", 12, 24)
    args = ["train", "--dataset", "folder", "--data-dir", str(root / "photos"), "--image-size", str(SIDE)]
    args += ["--set", "data.channels=3", "--set", "model.in_channels=3", "--set", "model.channel_mults=[1]"]
    args += ["--set", "data.prior_images=8", "--width", "8", "--steps", "2", "-b", "4", "--device", "cpu"]
    args += ["--set", "train.select_levels=false"]  # level selection (a minute here) has its own tests
    result = runner.invoke(app, [*args, "--threads", "1", "--no-progress", "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    assert json.loads((root / "run" / "config.json").read_text())["data"]["channels"] == 3
    return root / "run"


def test_colour_runs_default_to_inception_and_grey_28_to_the_shipped_net() -> None:
    assert default_features((1, 28, 28)) == "fashion"
    assert default_features((3, 32, 32)) == default_features((1, 32, 32)) == "inception"


def test_eval_of_a_colour_run_without_inception_weights_says_where_to_put_them(
    colour_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOFTDIFF_CACHE", str(tmp_path / "cache"))
    args = ["eval", "--ckpt", str(colour_run), "-n", "4", "--steps", "2", "--sampler", "euler", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--no-progress", "--out", str(tmp_path / "eval")])
    assert result.exit_code == 2, result.output
    line = result.output.replace("\n", "")
    assert line.startswith("error: ") and "Traceback" not in line
    assert f"put it at {tmp_path / 'cache' / INCEPTION_WEIGHTS_FILE} or pass --inception-weights PATH" in line
    assert not (tmp_path / "eval" / "eval.json").exists()


def test_eval_with_a_missing_weights_file_names_it(colour_run: Path, tmp_path: Path) -> None:
    args = ["eval", "--ckpt", str(colour_run), "-n", "4", "--features", "inception", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--inception-weights", str(tmp_path / "nope.pth"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("error: "), result.output
    assert INCEPTION_WEIGHTS_FILE in result.output.replace("\n", "")


RESTORE = ["--operator", "blur:sigma=1", "--noise", "0.05", "--samples", "1", "--steps", "2", "--device", "cpu"]


def test_restore_takes_colour_photos_at_the_run_size(colour_run: Path, tmp_path: Path) -> None:
    files = _photos(tmp_path / "in", 2, SIDE, seed=1)
    args = ["restore", *map(str, files), "--ckpt", str(colour_run), *RESTORE, "--no-progress"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    restored = np.load(tmp_path / "out" / "restored.npz")
    assert restored[restored.files[0]].shape[-3:] == (3, SIDE, SIDE)


def test_restore_refuses_other_sizes_in_one_line_and_resizes_them_when_asked(colour_run: Path, tmp_path: Path) -> None:
    files = _photos(tmp_path / "in", 1, 56, seed=2)
    args = ["restore", *map(str, files), "--ckpt", str(colour_run), *RESTORE, "--no-progress"]
    refused = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.output.startswith(f"error: size mismatch: {files[0]} is 56x56 but the model restores 16x16")
    resized = runner.invoke(app, [*args, "--resize", "--out", str(tmp_path / "b")])
    assert resized.exit_code == 0, resized.output
    restored = np.load(tmp_path / "b" / "restored.npz")
    assert restored[restored.files[0]].shape[-3:] == (3, SIDE, SIDE)


def test_train_channels_are_the_images_channels_and_width_the_networks(tmp_path: Path) -> None:
    """The same --channels as schedule and corrupt: 1 reads colour photos as grey; the U-Net width is --width."""
    _photos(tmp_path / "photos", 8, 20)
    args = ["train", "--dataset", "folder", "--data-dir", str(tmp_path / "photos"), "--image-size", str(SIDE)]
    args += ["--channels", "1", "--width", "8", "--set", "model.channel_mults=[1]", "--set", "data.prior_images=8"]
    args += ["--steps", "1", "-b", "4", "--device", "cpu", "--threads", "1", "--no-progress"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["channels"] == 1 and config["model"]["in_channels"] == 1
    assert config["model"]["base_channels"] == 8


def test_train_channels_given_a_width_names_the_width_flag(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--dataset", "synthetic", "--channels", "32", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    line = result.output.replace("\n", "")
    assert line.startswith("error: ") and "--width" in line and "Traceback" not in line
    assert not (tmp_path / "r" / "config.json").exists()


def test_corrupt_reads_a_folder_at_the_asked_size_and_channels(tmp_path: Path) -> None:
    _photos(tmp_path / "photos", 4, 24)
    out = tmp_path / "strip.png"
    args = ["corrupt", "folder", "--data-dir", str(tmp_path / "photos"), "--image-size", "12", "--channels", "1"]
    result = runner.invoke(app, [*args, "-n", "2", "-k", "3", "--scale", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as strip:
        assert strip.mode == "L" and strip.size == (3 * (12 + 2) + 2, 2 * (12 + 2) + 2)


BUILT_IN = [*(name for name in CORRUPTIONS.names() if name != "custom"), "blur+mask"]  # custom: a user's operator


@pytest.mark.parametrize("spec", BUILT_IN)
def test_every_built_in_corruption_trains_and_samples_colour_with_no_flags(tmp_path: Path, spec: str) -> None:
    """The defaults (objective, noise scale, sampler) for every corruption, on RGB photos where desaturate acts."""
    _photos(tmp_path / "photos", 8, SIDE)
    args = ["train", "-c", spec, "--dataset", "folder", "--data-dir", str(tmp_path / "photos"), "--channels", "3"]
    args += ["--image-size", str(SIDE), "--set", "model.channel_mults=[1]", "--set", "data.prior_images=8"]
    args += ["--width", "8", "--steps", "2", "-b", "4", "--device", "cpu", "--threads", "1", "--no-progress"]
    args += ["--set", "train.select_levels=false", "--set", "train.preview_every=null"]  # each has its own tests
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["in_channels"] == 3  # from --channels
    sample = ["sample", "--ckpt", str(tmp_path / "run"), "-n", "4", "--steps", "4", "--no-progress"]
    result = runner.invoke(app, [*sample, "--device", "cpu", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    npz = np.load(tmp_path / "s" / "samples.npz")
    assert json.loads(str(npz["meta"]))["sampler"] == "dpmpp_2m_sde"  # every kind's default at 4 steps
    assert npz["images"].shape[0] == 4 and 3 in npz["images"].shape[1:] and np.isfinite(npz["images"]).all()
