"""``softdiff schedule`` end to end on the small synthetic data set."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from softdiff.cli.app import app
from softdiff.corrupt import CorruptionConfig
from softdiff.schedule import retime

runner = CliRunner()


def test_schedule_writes_a_table_the_config_loads_and_a_plot(tmp_path) -> None:
    out = tmp_path / "levels.json"
    args = ["schedule", "--dataset", "synthetic", "-k", "5", "--candidates", "16", "--samples", "64", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["k"] == 5 and data["spec"] == "blur" and data["samples"] == 64
    assert (tmp_path / "levels.png").stat().st_size > 1000
    process = retime(CorruptionConfig(spec="blur"), out).build((16, 16))
    assert process.warp is not None and process.warp.to_list() == data["t"]


def test_schedule_rejects_impossible_requests_in_one_line(tmp_path) -> None:
    args = ["schedule", "--dataset", "synthetic", "-k", "40", "--candidates", "16", "--out", str(tmp_path / "l.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "error: cannot choose k=40 levels from 16 candidates" in result.output
    assert "Traceback" not in result.output


def test_a_table_for_another_corruption_is_one_error_in_train_sample_and_corrupt(tmp_path, run_dir) -> None:  # noqa: ANN001
    """A table chosen for blur+pixelate is refused by a noise or mask run, and as the grid of a blur run."""
    out = tmp_path / "levels.json"
    args = ["schedule", "-c", "blur+pixelate", "--dataset", "synthetic", "-k", "3", "--candidates", "8"]
    assert runner.invoke(app, [*args, "--samples", "32", "--out", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["spec"] == "blur+pixelate"
    train = ["train", "--dataset", "synthetic", "--steps", "1", "--no-progress", "--device", "cpu"]
    train += ["--levels", str(out)]
    sample = ["sample", "--ckpt", str(run_dir), "--steps", "2", "-n", "1", "--device", "cpu", "--no-progress"]
    strip = ["corrupt", "synthetic", "-n", "1", "--level-file", str(out), "--out", str(tmp_path / "strip.png")]
    calls = {
        "noise": [*train, "-c", "noise", "--out", str(tmp_path / "noise")],
        "mask": [*train, "-c", "mask", "--out", str(tmp_path / "mask")],
        "blur": [*sample, "--grid", str(out), "--out", str(tmp_path / "samples")],
        "mask ": [*strip, "-c", "mask"],
    }
    for spec, call in calls.items():
        result = runner.invoke(app, call)
        assert result.exit_code == 2, result.output
        expected = f"error: level table {out} was chosen for corruption 'blur+pixelate', not '{spec.strip()}'"
        assert result.output.replace("\n", "").startswith(expected), result.output
    assert not (tmp_path / "noise").exists() and not (tmp_path / "samples" / "samples.npz").exists()
