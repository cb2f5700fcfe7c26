"""Level selection at the data's size and colour: the DCT-diagonal shortcut and the shape flags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from softdiff.cli.app import app
from softdiff.corrupt import CorruptionConfig, CorruptionProcess
from softdiff.schedule import DataMoments, select_levels
from softdiff.schedule.distances import LevelFitter, fit_level
from softdiff.schedule.projection import make_projection

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


def _process(spec: str, side: int) -> CorruptionProcess:
    built = CorruptionConfig(spec=spec).build((side, side))
    return CorruptionProcess(built.operator, built.noise)


@pytest.mark.parametrize(("spec", "spectral"), [("blur", True), ("noise", True), ("mask", False)])
def test_the_shortcut_equals_corrupting_every_factor_row(spec: str, spectral: bool) -> None:
    moments = DataMoments.from_images(torch.randn(40, 3, 12, 12, generator=torch.Generator().manual_seed(0)))
    process, project = _process(spec, 12), make_projection(5, (3, 12, 12))
    fit = LevelFitter(process, moments, project)
    assert fit.spectral is spectral  # mask is diagonal in pixels, not in DCT frequencies: the slow path
    for u in (0.0, 0.37, 1.0):
        (mean, cov), (ref_mean, ref_cov) = fit(u), fit_level(process, moments, u, project, 512)
        torch.testing.assert_close(mean, ref_mean, rtol=0, atol=1e-12)
        torch.testing.assert_close(cov, ref_cov, rtol=1e-12, atol=1e-12)


def test_full_resolution_never_takes_the_shortcut() -> None:
    moments = DataMoments.from_images(torch.randn(10, 1, 6, 6, generator=torch.Generator().manual_seed(1)))
    assert not LevelFitter(_process("blur", 6), moments, make_projection(None, (1, 6, 6))).spectral


def test_a_projected_colour_selection_is_the_same_with_and_without_the_shortcut(monkeypatch) -> None:  # noqa: ANN001
    images = torch.randn(60, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    fast = select_levels(CorruptionConfig(spec="blur"), images, candidates=24, k=6, projection=6)
    monkeypatch.setattr(LevelFitter, "_spectral", staticmethod(lambda *args: None))
    slow = select_levels(CorruptionConfig(spec="blur"), images, candidates=24, k=6, projection=6)
    assert fast.times == slow.times
    np.testing.assert_allclose(fast.distances, slow.distances, rtol=1e-9)


def _colour_folder(folder: Path, n: int = 24, side: int = 20) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def test_schedule_reads_a_colour_folder_at_the_requested_size(tmp_path: Path) -> None:
    folder, out = _colour_folder(tmp_path / "photos"), tmp_path / "levels.json"
    args = ["schedule", "--dataset", "folder", "--data-dir", str(folder), "--image-size", "12", "--channels", "3"]
    result = runner.invoke(app, [*args, "-k", "4", "--candidates", "8", "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = json.loads(out.read_text())
    assert table["data"] == {"dataset": "folder", "shape": [3, 12, 12]}
    assert table["projection"] == "none"  # 432 values: full resolution


def test_schedule_takes_the_shape_from_a_run_config(tmp_path: Path) -> None:
    folder, out = _colour_folder(tmp_path / "photos"), tmp_path / "levels.json"
    config = tmp_path / "run.toml"
    config.write_text(f'[data]\ndataset = "folder"\ndata_dir = "{folder}"\nimage_size = 8\nchannels = 1\n')
    result = runner.invoke(app, ["schedule", "--config", str(config), "-k", "3", "--candidates", "6", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["data"]["shape"] == [1, 8, 8]


def test_a_size_a_fixed_size_data_set_lacks_is_one_error_line(tmp_path: Path) -> None:
    args = ["schedule", "--dataset", "synthetic", "--image-size", "64", "--out", str(tmp_path / "l.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.startswith("error: dataset 'synthetic' has fixed 16x16 images"), result.output
    assert "Traceback" not in result.output
