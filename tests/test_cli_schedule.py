"""``softdiff schedule`` end to end on the small synthetic data set."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from softdiff.cli.app import app
from softdiff.corrupt import CorruptionConfig

runner = CliRunner()


def test_schedule_writes_a_table_the_config_loads_and_a_plot(tmp_path) -> None:
    out = tmp_path / "levels.json"
    args = ["schedule", "--dataset", "synthetic", "-k", "5", "--candidates", "16", "--samples", "64", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["k"] == 5 and data["spec"] == "blur" and data["samples"] == 64
    assert (tmp_path / "levels.png").stat().st_size > 1000
    process = CorruptionConfig(spec="blur").with_levels_file(out).build((16, 16))
    assert process.warp is not None and process.warp.to_list() == data["t"]


def test_schedule_rejects_impossible_requests_in_one_line(tmp_path) -> None:
    args = ["schedule", "--dataset", "synthetic", "-k", "40", "--candidates", "16", "--out", str(tmp_path / "l.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "error: cannot choose k=40 levels from 16 candidates" in result.output
    assert "Traceback" not in result.output
