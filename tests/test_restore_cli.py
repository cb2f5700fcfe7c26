"""``softdiff restore`` end to end on the tiny shared run (synthetic 16x16 data, blur process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _doc_examples import python_blocks
from PIL import Image
from typer.testing import CliRunner

from softdiff.cli import app

runner = CliRunner()


def restore(run_dir: Path, out: Path, *extra: str, code: int = 0) -> str:
    args = ["restore", "--ckpt", str(run_dir), "--steps", "2", "--out", str(out), "--device", "cpu", "--no-progress"]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == code, result.output
    return result.output


def test_restores_dataset_images_and_scores_them(run_dir: Path, tmp_path: Path) -> None:
    output = restore(
        run_dir, tmp_path, "--operator", "pixelate:factor=4", "--noise", "0.05", "--from-dataset", "synthetic",
        "-n", "3", "--samples", "2", "--method", "project",
    )  # fmt: skip
    restored, samples, degraded = (np.load(tmp_path / f"{k}.npz") for k in ("restored", "samples", "degraded"))
    assert restored["images"].dtype == np.uint8 and restored["images"].shape == (3, 1, 16, 16)
    assert samples["images"].shape == (3, 2, 1, 16, 16)
    assert degraded["images"].shape == (3, 1, 16, 16) and degraded["y"].dtype == np.float32
    mean = samples["images"].astype(np.float64).mean(axis=1)
    inside = ((samples["images"] > 0) & (samples["images"] < 255)).all(axis=1)  # no sample clipped to [-1, 1]
    assert inside.mean() > 0.3 and np.abs(mean - restored["images"])[inside].max() <= 1  # the samples' mean
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == "project" and metrics["n"] == 3 and metrics["samples_per_image"] == 2
    for key in ("psnr", "ssim", "consistency"):
        assert np.isfinite(metrics["mean"][key]) and np.isfinite(metrics["sample"][key])
    assert metrics["truth_consistency"] == pytest.approx(0.05, rel=0.3)
    assert metrics["nfe"] == 2 and metrics["meta"]["operator"] == "pixelate:factor=4"
    assert "fid" not in metrics["mean"] and "no FID" in output  # fashion features need 28x28 images
    strip = Image.open(tmp_path / "strips" / "000002.png")  # degraded | 2 samples | mean | clean
    assert strip.size == (3 * (5 * 18 + 2), 3 * 20)


def test_restores_image_files_by_level_entry(run_dir: Path, tmp_path: Path) -> None:
    restore(
        run_dir, tmp_path / "a", "--operator", "level:t=0.5", "--noise", "0", "--from-dataset", "synthetic", "-n", "2"
    )
    degraded = np.load(tmp_path / "a" / "degraded.npz")["images"]
    files = []
    for i, image in enumerate(degraded):
        files.append(tmp_path / f"in{i}.png")
        Image.fromarray(image[0]).save(files[-1])
    output = restore(run_dir, tmp_path / "b", "--operator", "level:t=0.5", "--noise", "0", *map(str, files))
    assert "with level (ancestral" in output.replace("\n", " ")
    assert not (tmp_path / "b" / "metrics.json").exists()
    assert np.load(tmp_path / "b" / "restored.npz")["images"].shape == (2, 1, 16, 16)


def test_results_do_not_depend_on_the_batch_size(run_dir: Path, tmp_path: Path) -> None:
    common = ["--operator", "mask:fraction=0.5", "--noise", "0.1", "--from-dataset", "synthetic", "-n", "3"]
    restore(run_dir, tmp_path / "a", *common, "--method", "dps", "-b", "3", "--no-fid")
    restore(run_dir, tmp_path / "b", *common, "--method", "dps", "-b", "1", "--no-fid")
    a, b = (np.load(tmp_path / k / "samples.npz")["images"] for k in "ab")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--operator", "blur:sigma=two", "--noise", "0", "--from-dataset", "synthetic"],
            "sigma='two' is not a number",
        ),
        (["--operator", "smear:width=2", "--noise", "0", "--from-dataset", "synthetic"], "unknown operator 'smear'"),
        (["--operator", "blur:sigma=1", "--noise", "-0.1", "--from-dataset", "synthetic"], "must be >= 0"),
        (["--operator", "blur:sigma=1", "--noise", "0", "WRONG_SIZE"], "size mismatch"),
        (["--operator", "blur:sigma=1", "--noise", "0"], "give either image files or --from-dataset"),
        (
            ["--operator", "blur:sigma=1", "--noise", "0", "--method", "magic", "--from-dataset", "synthetic"],
            "unknown method",
        ),
        (["--operator", "box:size=5", "--noise", "0", "--from-dataset", "synthetic"], "same parity"),
        (
            ["--operator", "pixelate:factor=2", "--noise", "0", "--method", "level", "--from-dataset", "synthetic"],
            "is not a level",
        ),
    ],
)
def test_bad_input_is_a_one_line_error(run_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    wrong = tmp_path / "wrong.png"
    Image.fromarray(np.zeros((20, 16), dtype=np.uint8)).save(wrong)
    args = [str(wrong) if a == "WRONG_SIZE" else a for a in args]
    output = restore(run_dir, tmp_path / "out", *args, code=2)
    assert message in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_an_unwritable_out_folder_fails_before_restoring(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    output = restore(
        run_dir, tmp_path / "file" / "out", "--operator", "blur:sigma=1", "--noise", "0", "--from-dataset",
        "synthetic", "-n", "2", code=2,
    )  # fmt: skip
    assert "cannot be created" in output and "restoring" not in output
    assert len(output.strip().splitlines()) == 1


def test_the_python_example_of_the_restoration_page_runs(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    code = python_blocks("restoration.md")[0]
    code = code.replace('"runs/fashion-blur"', repr(str(run_dir))).replace('"fashion-mnist"', '"synthetic"')
    exec(compile(code, "restoration.md", "exec"), {"__name__": "restoration"})
    printed = capsys.readouterr().out
    assert "psnr" in printed and "consistency" in printed
