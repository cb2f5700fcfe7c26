"""A fresh blur run selects its own levels, exactly as ``softdiff schedule`` would; other runs keep their schedule."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.schedule.defaults import DEFAULT_LEVELS

runner = CliRunner()
TINY = ["--dataset", "synthetic", "--steps", "1", "--batch-size", "4", "--width", "8", "--device", "cpu"]


def _train(out: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["train", *TINY, "--threads", "1", "--no-progress", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "config.json").read_text())


def test_a_fresh_blur_run_selects_the_levels_softdiff_schedule_chooses(tmp_path: Path) -> None:
    levels = _train(tmp_path / "run")["corruption"]["levels"]
    table = tmp_path / "levels.json"
    result = runner.invoke(app, ["schedule", "--dataset", "synthetic", "--threads", "1", "--out", str(table)])
    assert result.exit_code == 0, result.output
    assert len(levels) == DEFAULT_LEVELS and levels == json.loads(table.read_text())["t"]
    resumed = runner.invoke(
        app, ["train", *TINY, "--steps", "2", "--resume", "--no-progress", "--out", str(tmp_path / "run")]
    )
    assert resumed.exit_code == 0 and "selected" not in resumed.output, resumed.output  # keeps what it recorded
    assert json.loads((tmp_path / "run" / "config.json").read_text())["corruption"]["levels"] == levels


def test_runs_keep_their_schedule_when_told_or_when_the_operator_is_not_blur_like(tmp_path: Path) -> None:
    assert _train(tmp_path / "off", "--set", "train.select_levels=false")["corruption"]["levels"] is None
    assert _train(tmp_path / "mask", "--corruption", "mask")["corruption"]["levels"] is None
    assert _train(tmp_path / "noise", "--corruption", "noise")["corruption"]["levels"] is None
    given = tmp_path / "given.json"
    given.write_text(json.dumps({"t": [0.0, 0.3, 1.0]}))
    assert _train(tmp_path / "given", "--levels", str(given))["corruption"]["levels"] == [0.0, 0.3, 1.0]
