"""``softdiff sample`` end to end, on a tiny checkpoint written by ``softdiff train``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from softdiff.cli import app

runner = CliRunner()


def sample(run_dir: Path, out: Path, *extra: str) -> np.lib.npyio.NpzFile:
    args = ["sample", "--ckpt", str(run_dir), "--steps", "3", "-n", "5", "--out", str(out), "--device", "cpu"]
    result = runner.invoke(app, [*args, "--no-progress", *extra])
    assert result.exit_code == 0, result.output
    return np.load(out / "samples.npz")


def test_sample_writes_grid_npz_pngs_and_trajectory(run_dir: Path, tmp_path: Path) -> None:
    npz = sample(run_dir, tmp_path, "--png", "--trajectory", "--batch-size", "2", "--sampler", "heun")
    assert npz["images"].dtype == np.uint8 and npz["images"].shape == (5, 1, 16, 16)
    meta = json.loads(str(npz["meta"]))
    assert meta["times"] == [1.0, 0.666667, 0.333333, 0.0]
    assert meta | {"checkpoint": None, "times": None} == {
        "sampler": "heun",
        "steps": 3,
        "grid": "uniform",
        "times": None,
        "nfe": 5,
        "seed": 0,
        "checkpoint": None,
        "checkpoint_step": 2,
        "weights": "ema",
        "corruption": "blur",
    }
    assert int(npz["checkpoint_step"]) == 2 and str(npz["sampler"]) == "heun"
    assert Image.open(tmp_path / "grid.png").size[0] > 16
    pngs = sorted((tmp_path / "png").iterdir())
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(5)]
    assert np.array_equal(np.asarray(Image.open(pngs[3])), npz["images"][3, 0])
    strip = Image.open(tmp_path / "trajectory.png")  # 4 samples x (x_t, x0_hat) rows, 3 steps + final columns
    assert strip.size == (2 * (4 * 18 + 2), 2 * (8 * 18 + 2))


def test_multistep_sampler_on_a_named_grid(run_dir: Path, tmp_path: Path) -> None:
    edm = sample(run_dir, tmp_path / "edm", "--float", "--sampler", "dpmpp_2m", "--grid", "edm")
    meta = json.loads(str(edm["meta"]))
    assert (meta["sampler"], meta["grid"], meta["nfe"]) == ("dpmpp_2m", "edm", 3)
    uniform = sample(run_dir, tmp_path / "uniform", "--float", "--sampler", "dpmpp_2m")["images"]
    assert np.isfinite(edm["images"]).all() and not np.allclose(edm["images"], uniform)


def test_samples_do_not_depend_on_batch_size_and_raw_weights_differ(run_dir: Path, tmp_path: Path) -> None:
    whole = sample(run_dir, tmp_path / "a", "--float", "--batch-size", "5", "--seed", "3")["images"]
    split = sample(run_dir, tmp_path / "b", "--float", "--batch-size", "2", "--seed", "3")["images"]
    assert whole.dtype == np.float32
    np.testing.assert_allclose(whole, split, atol=1e-5)
    raw = sample(run_dir, tmp_path / "c", "--float", "--raw", "--seed", "3")
    assert json.loads(str(raw["meta"]))["weights"] == "raw"
    assert not np.allclose(raw["images"], whole)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ckpt", "does/not/exist"], "does/not/exist does not exist"),
        (["--ckpt", "CKPT", "--sampler", "ddpm"], "unknown sampler 'ddpm'"),
        (["--ckpt", "CKPT", "--grid", "cosine"], "unknown grid 'cosine'"),
        (["--ckpt", "CKPT", "--grid", "levels"], "needs a process trained on selected levels"),
        (["--ckpt", "CKPT", "--grid", "edm:2"], "stop time must lie in (0, 1)"),
    ],
)
def test_bad_input_is_a_one_line_error(run_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(run_dir) if a == "CKPT" else a for a in args]
    result = runner.invoke(app, ["sample", *args, "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
