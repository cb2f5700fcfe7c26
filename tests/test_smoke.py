"""End-to-end smoke checks of the package skeleton and the CLI entry point."""

import torch
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.corrupt import build_process


def test_blur_mask_process_corrupts_with_the_right_shape() -> None:
    process = build_process("blur+mask", (28, 28))
    x0 = torch.rand(3, 1, 28, 28) * 2 - 1
    xt = process.corrupt(x0, torch.tensor([0.0, 0.5, 1.0]), generator=torch.Generator().manual_seed(0))
    assert xt.shape == x0.shape and xt.dtype == x0.dtype
    assert torch.allclose(process.C(x0, 0.0), x0, atol=5e-3)


def test_cli_lists_commands_and_writes_a_strip(tmp_path) -> None:
    runner = CliRunner()
    assert "corrupt" in runner.invoke(app, ["--help"]).output
    out = tmp_path / "strip.png"
    result = runner.invoke(app, ["corrupt", "synthetic", "-c", "blur+mask", "-k", "4", "-n", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


def test_cli_unknown_corruption_is_one_line_error() -> None:
    result = CliRunner().invoke(app, ["corrupt", "synthetic", "-c", "blurx"])
    assert result.exit_code == 2
    assert "unknown corruption 'blurx'" in result.output
    assert "Traceback" not in result.output


def test_corrupt_shows_a_runs_own_process(tmp_path) -> None:
    """`corrupt --ckpt` draws the process the model learns to undo: its spec, noise and selected levels."""
    from softdiff.imageio import load_image

    runner = CliRunner()
    levels = tmp_path / "levels.json"
    levels.write_text('{"t": [0.0, 0.5, 0.8, 1.0]}')
    common = ["--dataset", "synthetic", "--steps", "1", "--batch-size", "4", "--width", "8", "--device", "cpu"]
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", *common, "-c", "mask", "--levels", str(levels), "--out", str(run)])
    assert result.exit_code == 0, result.output
    args = ["corrupt", "synthetic", "-k", "3", "-n", "1", "--scale", "1", "--no-noise"]
    result = runner.invoke(app, [*args, "--ckpt", str(run), "--out", str(tmp_path / "run.png")])
    assert result.exit_code == 0, result.output
    assert "'mask', selected levels" in result.output
    by_hand = [*args, "-c", "mask", "--level-file", str(levels), "--out", str(tmp_path / "hand.png")]
    assert runner.invoke(app, by_hand).exit_code == 0
    assert torch.equal(load_image(tmp_path / "run.png"), load_image(tmp_path / "hand.png"))
    result = runner.invoke(app, [*args, "--ckpt", str(run), "-c", "blur"])
    assert result.exit_code == 2 and "drop --corruption" in result.output
