"""``softdiff restore`` end to end on the tiny shared run (synthetic 16x16 data, blur process)."""

from __future__ import annotations

import json
import os
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
    strip = Image.open(tmp_path / "strips" / "000002.png")  # degraded | 2 samples | mean | clean, labelled
    assert strip.size == (3 * (5 * 18 + 2), 3 * 20 + 12)
    assert Image.open(tmp_path / "restored" / "000002.png").size == (16, 16)


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
        (["--operator", "smear:width=2", "--noise", "0", "--from-dataset", "synthetic"], "unknown corruption 'smear'"),
        (["--operator", "blur:sigma=1", "--noise", "-0.1", "--from-dataset", "synthetic"], ">= 0, got -0.1"),
        (["--operator", "blur:sigma=1", "--noise", "0", "WRONG_SIZE"], "size mismatch"),
        (["--operator", "blur:sigma=1", "--noise", "0"], "give either image files or --from-dataset"),
        (
            ["--operator", "blur:sigma=1", "--noise", "0", "--method", "magic", "--from-dataset", "synthetic"],
            "unknown method",
        ),
        (["--operator", "box:size=5", "--noise", "0", "--from-dataset", "synthetic"], "same parity"),
        (["--operator", "blur:sigma=1", "--noise", "inf", "--from-dataset", "synthetic"], "--noise is the std"),
        (["-A", "blur:sigma=1", "--noise", "0", "--dps-scale", "inf", "--from-dataset", "synthetic"], "--dps-scale"),
        (["-A", "blur:sigma=1", "--noise", "0", "--lambda", "inf", "--from-dataset", "synthetic"], "--lambda must"),
        (
            ["-A", "blur:sigma=1", "--noise", "0", "--pigdm-scale", "nan", "--from-dataset", "synthetic"],
            "--pigdm-scale",
        ),
        (["-A", "blur:sigma=1", "--noise", "0", "--eta", "1.5", "--from-dataset", "synthetic"], "--eta must lie"),
        (["-A", "blur:sigma=1", "--noise", "0", "--zeta", "-1", "--from-dataset", "synthetic"], "--zeta must lie"),
        (
            ["-A", "blur:sigma=1", "--noise", "0", "-m", "diffpir", "--lambda", "0", "--from-dataset", "synthetic"],
            "> 0",
        ),
        (["-A", "blur:sigma=1", "--noise", "0", "--seed", str(2**64), "--from-dataset", "synthetic"], "--seed must"),
        (["-A", "box:size=0", "--noise", "0", "--from-dataset", "synthetic"], "greater than or equal to 1"),
        (["-A", "blur:sigma=2,sigma=3", "--noise", "0", "--from-dataset", "synthetic"], "sigma is given twice"),
        (["-A", "blur:sigma=1e308", "--noise", "0", "--from-dataset", "synthetic"], "NaN or infinite values"),
        (["-A", "[/]", "--noise", "0", "--from-dataset", "synthetic"], "unknown corruption '[/]'"),
        (["-A", "blur:sigma=1", "--noise", "0", "--from-dataset", "synthetic", "-n", "100000"], "more images than"),
        (["-A", "blur:sigma=1", "--noise", "0", "--from-dataset", "synthetic", "-k", "10000000"], "ask for less"),
        (["-A", "blur:sigma=1", "--noise", "0", "FIFO"], "is not a regular file"),
        (
            ["-A", "blur:sigma=1", "--noise", "0", "--from-dataset", "synthetic", "--indices", "OUT_OF_RANGE"],
            "out of range",
        ),
        (
            ["-A", "blur:sigma=1", "--noise", "0", "--from-dataset", "synthetic", "--indices", "DUPLICATE"],
            "listed twice",
        ),
        (["-A", "blur:sigma=1", "--noise", "0", "--from-dataset", "synthetic", "--indices", "FIFO"], "not a regular"),
        (
            ["--operator", "pixelate:factor=2", "--noise", "0", "--method", "level", "--from-dataset", "synthetic"],
            "is not a level",
        ),
    ],
)
def test_bad_input_is_a_one_line_error(run_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    files = {"WRONG_SIZE": tmp_path / "wrong.png", "FIFO": tmp_path / "fifo.png"}
    files |= {"OUT_OF_RANGE": tmp_path / "range.json", "DUPLICATE": tmp_path / "twice.txt"}
    Image.fromarray(np.zeros((20, 16), dtype=np.uint8)).save(files["WRONG_SIZE"])
    os.mkfifo(files["FIFO"])  # reading it would block forever
    files["OUT_OF_RANGE"].write_text("[0, 1, 100000]")
    files["DUPLICATE"].write_text("3\n1\n3\n")
    args = [str(files[a]) if a in files else a for a in args]
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


@pytest.mark.parametrize("method", ["ddrm", "diffpir", "pigdm"])
def test_the_field_methods_restore_from_the_cli(run_dir: Path, tmp_path: Path, method: str) -> None:
    restore(
        run_dir, tmp_path, "-A", "mask:fraction=0.5", "--noise", "0.05", "--from-dataset", "synthetic", "-n", "2",
        "--samples", "2", "--method", method,
    )  # fmt: skip
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == method and np.isfinite(metrics["mean"]["psnr"])
    params = metrics["protocol"]["parameters"]
    expected = {"ddrm": {"eta": 0.85, "eta_b": 1.0}, "diffpir": {"lam": 1.0, "zeta": 0.3}, "pigdm": {"scale": 1.0}}
    assert expected[method].items() <= params.items() and params["steps"] == 2


def test_a_second_run_with_the_same_arguments_gives_identical_numbers(run_dir: Path, tmp_path: Path) -> None:
    """The protocol: indices, the measurement-noise and sampler seeds and the method's parameters are recorded;
    an image's numbers depend on its data set index, not on its position in the list."""
    (tmp_path / "ids.txt").write_text("4\n0\n2\n")
    common = ["-A", "blur:sigma=1", "--noise", "0.05", "--from-dataset", "synthetic", "--method", "dps", "--no-fid"]
    restore(run_dir, tmp_path / "a", *common, "--indices", str(tmp_path / "ids.txt"), "--seed", "3")
    restore(run_dir, tmp_path / "b", *common, "--indices", str(tmp_path / "ids.txt"), "--seed", "3", "-b", "2")
    a, b = (json.loads((tmp_path / k / "metrics.json").read_text()) for k in "ab")
    for m in (a, b):
        m.pop("seconds_per_image")
    assert a == b
    protocol = a["protocol"]
    assert protocol["indices"] == [4, 0, 2] and protocol["measurement_noise"]["seed"] == 3
    assert protocol["sampler_noise"]["seed"] == 3 and protocol["parameters"]["scale"] == 1.0
    restore(run_dir, tmp_path / "c", *common, "-n", "1", "--seed", "3")  # image 0 alone, by the default list
    first = np.load(tmp_path / "c" / "samples.npz")["images"][0]
    assert np.array_equal(np.load(tmp_path / "a" / "samples.npz")["images"][1], first)
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["protocol"]["indices"] == [0]


def test_noise_zero_on_8_bit_files_is_their_rounding_noise_and_outputs_are_named_after_them(
    run_dir: Path, tmp_path: Path
) -> None:
    """Issue 25: box inpainting at --noise 0 on 8-bit PNGs (hidden pixels read back as 0.0039) gave all-black
    outputs; the rounding is now measurement noise, and each image gets its own PNGs under its own name."""
    restore(run_dir, tmp_path / "a", "-A", "box:size=8", "--noise", "0", "--from-dataset", "synthetic", "-n", "2")
    degraded = np.load(tmp_path / "a" / "degraded.npz")["images"]
    files = []
    for name, image in zip(["shirt", "boot"], degraded, strict=True):
        files.append(tmp_path / f"{name}.png")
        Image.fromarray(image[0]).save(files[-1])
    big = tmp_path / "big.png"  # another size: resized with --resize
    Image.fromarray(np.full((40, 32), 128, dtype=np.uint8)).save(big)
    output = restore(
        run_dir, tmp_path / "b", "-A", "box:size=8", "--noise", "0", "--method", "project", "--resize",
        *map(str, [*files, big]),
    )  # fmt: skip
    assert "rounding is measurement noise, so sigma_y = 0.00226" in " ".join(output.split())
    restored = np.load(tmp_path / "b" / "restored.npz")
    assert restored["images"].shape == (3, 1, 16, 16) and restored["images"].std() > 1  # not black, not flat
    assert json.loads(str(restored["meta"]))["sigma_y"] == pytest.approx(2 / 255 / 12**0.5)
    for name in ("shirt", "boot", "big"):
        assert Image.open(tmp_path / "b" / "restored" / f"{name}.png").size == (16, 16)
        assert Image.open(tmp_path / "b" / "strips" / f"{name}.png").size == (
            3 * (6 * 18 + 2),
            3 * 20 + 12,
        )  # degraded | 4 samples | mean


def test_fid_below_100_images_carries_a_caveat() -> None:
    from softdiff.cli.restore import _summary

    stats = {"psnr": 20.0, "ssim": 0.5, "consistency": 0.02, "fid": 30.0}
    small = _summary({"n": 16, "mean": stats, "sample": stats}, 0.02)
    large = _summary({"n": 100, "mean": stats, "sample": stats}, 0.02)
    assert "FID 30.0" in small and "biased high" in small and "biased" not in large
