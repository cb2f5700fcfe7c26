"""``bench/quality/quality.py`` at tiny size: equal budgets, NFE by sampler, outputs, resume, refusals."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

import softdiff.eval.sweeps as grid_module
from softdiff.eval import FeatureExtractor

BENCH = Path(__file__).parents[1] / "bench" / "quality"


class PooledPixels(FeatureExtractor):
    """Stand-in features for 16x16 synthetic images (the Fashion-MNIST net takes 28x28)."""

    num_features = 16
    description = "pooled-pixels (test)"

    def features(self, images: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(images.float() / 127.5 - 1, 4).flatten(1)


@pytest.fixture
def quality(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    from bench.quality import _eval_common, quality

    monkeypatch.setattr(_eval_common, "get_extractor", lambda features, inception_weights=None: PooledPixels())
    threads = torch.get_num_threads()
    yield quality
    torch.set_num_threads(threads)
    sys.modules.pop("bench.quality.quality", None)


@pytest.fixture
def sweeps(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``generate`` call the evaluation sweep makes (a reused cell makes none)."""
    seen: list[dict[str, Any]] = []
    real = grid_module.generate

    def counting(*args: Any, **kwargs: Any) -> Tensor:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(grid_module, "generate", counting)
    return seen


def argv(tmp: Path, *extra: str) -> list[str]:
    common = ["--tiny", "--runs", str(tmp / "runs"), "--set", "data.dataset=synthetic", "--device", "cpu"]
    return [*common, "--samplers", "momentum,heun", "-n", "8", "--nfe", "2,4", *extra]


@pytest.mark.slow
def test_equal_budgets_cells_outputs_and_resume(quality: ModuleType, sweeps: list, tmp_path: Path) -> None:
    report = quality.main(argv(tmp_path, "--steps", "4"))
    budget, runs = report["budget"], report["runs"]
    assert report["complete"] and report["budget_differences"] == []
    assert (budget["steps"], budget["batch_size"], budget["images_per_run"]) == (4, 16, 64)
    assert budget["epochs"] == pytest.approx(64 / 512)  # the synthetic training split has 512 images
    assert list(runs) == ["soft-blur", "x0-blur", "vanilla"]
    assert [(r["corruption"], r["objective"]) for r in runs.values()] == [
        ("blur", "soft"),
        ("blur", "x0"),
        ("noise", "x0"),
    ]
    assert {(r["checkpoint_step"], r["images_seen"], r["parameters"]) for r in runs.values()} == {
        (4, 64, runs["vanilla"]["parameters"])
    }
    for name, cells in report["cells"].items():  # the NFE of a budget comes from samplers.nfe: heun 2k - 1
        assert [(c["steps"], c["nfe"]) for c in cells["momentum"]] == [(2, 2), (4, 4)], name
        assert [(c["steps"], c["nfe"]) for c in cells["heun"]] == [(1, 1), (2, 3)], name
        assert all(c["n"] == 8 and c["checkpoint_step"] == 4 and c["fid"] >= 0 for cs in cells.values() for c in cs)
    assert report["floor"]["n"] == 8
    assert json.loads((tmp_path / "runs" / "quality.json").read_text())["metrics"]["cells"] == report["cells"]
    assert Image.open(report["plot"]).size[0] > 100
    for name, grid in report["grids"].items():
        assert grid["nfe"] == 4 and Path(grid["path"]).name == f"quality-samples-{name}.png"
        assert Image.open(grid["path"]).size == (2 * (8 * 18 + 2), 2 * 18 + 4)  # 8 samples of 16 px, pad 2, x2
    assert len(sweeps) == 12

    sweeps.clear()  # more steps: every run continues from its checkpoint, and is evaluated again
    resumed = quality.main(argv(tmp_path, "--steps", "6"))
    for run in resumed["runs"].values():
        assert [(s["from_step"], s["to_step"]) for s in run["segments"]] == [(0, 4), (4, 6)]
        assert run["checkpoint_step"] == 6 and run["images_seen"] == 96
        assert run["train_wall_seconds"] == pytest.approx(sum(s["loop_seconds"] for s in run["segments"]))
    assert len(sweeps) == 12

    sweeps.clear()  # the same command again: nothing trained, every cell reused
    again = quality.main(argv(tmp_path, "--steps", "6"))
    assert [len(r["segments"]) for r in again["runs"].values()] == [2, 2, 2]
    assert sweeps == [] and again["cells"] == resumed["cells"]

    recipes = tmp_path / "recipes"  # an edited recipe does not silently reuse a run trained with the old one
    shutil.copytree(BENCH / "recipes", recipes)
    vanilla = recipes / "vanilla.toml"
    vanilla.write_text(vanilla.read_text().replace('weighting = "normalised"', 'weighting = "uniform"'))
    with pytest.raises(ValueError, match="vanilla.*trained with another objective"):
        quality.main(argv(tmp_path, "--steps", "6", "--recipe-dir", str(recipes)))


def test_refuses_recipes_that_change_the_budget(quality: ModuleType, tmp_path: Path) -> None:
    bad = tmp_path / "wide.toml"
    bad.write_text('[objective]\nname = "x0"\n\n[model]\nbase_channels = 64\n')
    with pytest.raises(ValueError, match="a recipe sets only corruption and objective"):
        quality.main(argv(tmp_path, "--recipes", f"vanilla,{bad}"))
    with pytest.raises(ValueError, match="recipes own corruption and objective"):
        quality.main(argv(tmp_path, "--set", "objective.weighting=uniform"))
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        quality.main(argv(tmp_path, "--samplers", "momentum,nope"))
    assert not (tmp_path / "runs").exists()  # refused before any training


@pytest.mark.slow
def test_parallel_time_budget_plans_and_continues(quality: ModuleType, tmp_path: Path) -> None:
    """``--parallel``: ``softdiff train`` processes; the warm-up is measured, then the run continues."""
    extra = ["--recipes", "vanilla", "--parallel", "--steps", "4", "--time-budget", "600", "--warmup-steps", "2"]
    report = quality.main(argv(tmp_path, *extra, "--train-only"))
    plan = report["budget"]["plan"]
    assert plan["warmup_steps"] == 2 and plan["steps"] == 4 and not plan["capped"] and plan["seconds_per_step"] > 0
    assert json.loads((tmp_path / "runs" / "plan.json").read_text()) == plan
    run = report["runs"]["vanilla"]
    assert [(s["from_step"], s["to_step"], s["mode"]) for s in run["segments"]] == [
        (0, 2, "parallel"), (2, 4, "parallel")
    ]  # fmt: skip
    assert run["checkpoint_step"] == 4 and "cells" not in report


def test_defaults_table_has_a_known_recipe_for_every_trained_corruption() -> None:
    """Issue 19's 1.3x target needs a measured recipe beside each row; read from the results files, never typed."""
    import json

    from bench.quality import defaults

    rows = json.loads((defaults.RESULTS / "defaults.json").read_text())["rows"]
    for row in rows:
        if row["status"] == "done":
            known = defaults.known_recipe(row["corruption"])
            assert known is not None and known["fid"] > 0, row["corruption"]
            assert known["nfe"] in defaults.TARGET_NFE or known["nfe"] + 1 in defaults.TARGET_NFE
