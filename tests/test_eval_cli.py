"""``softdiff eval`` end to end on a tiny checkpoint: table, eval.json, plot, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from typer.testing import CliRunner

import softdiff.cli.eval as eval_cli
import softdiff.eval.sweeps as grid_module
from softdiff.cli import app
from softdiff.eval import FeatureExtractor, parse_samplers, parse_steps

runner = CliRunner()


class PooledPixels(FeatureExtractor):
    """A tiny stand-in feature net for 16x16 synthetic images: 4x4 average-pooled pixels."""

    num_features = 16
    description = "pooled-pixels (test)"

    def features(self, images: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(images.float() / 127.5 - 1, 4).flatten(1)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Tiny features instead of the Fashion-MNIST net; records every ``generate`` call."""
    monkeypatch.setattr(eval_cli, "get_extractor", lambda features, inception_weights=None: PooledPixels())
    seen: list[dict[str, Any]] = []
    real_generate = grid_module.generate

    def counting_generate(*args: Any, **kwargs: Any) -> Tensor:
        seen.append(kwargs)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(grid_module, "generate", counting_generate)
    return seen


def evaluate(run_dir: Path, out: Path, *extra: str) -> Any:
    args = ["eval", "--ckpt", str(run_dir), "-n", "6", "--out", str(out), "--device", "cpu", "--no-progress"]
    return runner.invoke(app, [*args, "--cache-dir", str(out / "cache"), *extra])


def test_eval_writes_table_json_plot_and_resumes(run_dir: Path, tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    result = evaluate(run_dir, tmp_path, "--sampler", "momentum,heun", "--steps", "2,3", "--seed", "4")
    assert result.exit_code == 0, result.output
    assert [(c["sampler"], c["steps"], c["seed"]) for c in calls] == [
        ("momentum", 2, 4), ("momentum", 3, 4), ("heun", 2, 4), ("heun", 3, 4)
    ]  # fmt: skip
    stored = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in stored] == [
        ("momentum", 2, 2), ("momentum", 3, 3), ("heun", 2, 3), ("heun", 3, 5)
    ]  # fmt: skip
    for r in stored:
        assert r["features"] == "pooled-pixels (test)" and r["n"] == 6 and r["seed"] == 4
        assert r["checkpoint_step"] == 2 and r["corruption"] == "blur"
        assert r["fid"] >= 0 and r["seconds"] >= r["sample_seconds"] > 0
    assert "FID" in result.output and "heun" in result.output
    assert Image.open(tmp_path / "fid_vs_nfe.png").size[0] > 100

    calls.clear()  # the same cells again plus one new: only the new one is sampled
    again = evaluate(run_dir, tmp_path, "--sampler", "momentum,heun", "--steps", "3,4", "--seed", "4")
    assert again.exit_code == 0, again.output
    assert [(c["sampler"], c["steps"]) for c in calls] == [("momentum", 4), ("heun", 4)]
    assert "reused" in again.output
    stored_again = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert len(stored_again) == 6 and stored_again[:4] == stored

    calls.clear()  # another n (or seed) is another experiment: recomputed
    other = evaluate(run_dir, tmp_path, "--sampler", "momentum", "--steps", "3", "--seed", "5")
    assert other.exit_code == 0, other.output
    assert len(calls) == 1


def test_cells_record_their_grid_and_old_cells_count_as_uniform(
    run_dir: Path, tmp_path: Path, calls: list[dict[str, Any]]
) -> None:
    first = evaluate(run_dir, tmp_path, "--sampler", "dpmpp_2m", "--steps", "3", "--grid", "uniform,edm:0.5")
    assert first.exit_code == 0, first.output
    assert [(c["sampler"], c["grid"], c["steps"]) for c in calls] == [
        ("dpmpp_2m", "uniform", 3),
        ("dpmpp_2m", "edm:0.5", 3),
    ]
    stored = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert [r["grid"] for r in stored] == ["uniform", "edm:0.5"] and stored[0]["fid"] != stored[1]["fid"]

    for r in stored:  # a file written before grids existed: no grid field, sampled on the uniform grid
        if r["grid"] == "uniform":
            del r["grid"]
    (tmp_path / "eval.json").write_text(json.dumps({"version": 1, "results": stored}))
    calls.clear()
    again = evaluate(run_dir, tmp_path, "--sampler", "dpmpp_2m", "--steps", "3", "--grid", "uniform,edm")
    assert again.exit_code == 0, again.output
    assert [c["grid"] for c in calls] == ["edm"]  # the uniform cell is reused, edm (to 0) is not edm:0.5
    assert "reused" in again.output


def test_same_seed_gives_same_scores_whatever_the_batch_size(
    run_dir: Path, tmp_path: Path, calls: list[dict[str, Any]]
) -> None:
    a = evaluate(run_dir, tmp_path / "a", "--sampler", "euler", "--steps", "2", "--batch-size", "6")
    b = evaluate(run_dir, tmp_path / "b", "--sampler", "euler", "--steps", "2", "--batch-size", "4")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    fid = [json.loads((tmp_path / d / "eval.json").read_text())["results"][0]["fid"] for d in "ab"]
    assert fid[0] == pytest.approx(fid[1], rel=1e-6)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sampler", "momentum,leapfrog"], "unknown sampler 'leapfrog'"),
        (["--steps", "5,ten"], "bad step list"),
        (["--steps", "5,0"], "step counts must be >= 1"),
        (["--steps", ","], "no step count"),
        (["-n", "1"], "at least 2"),
        (["--features", "clip"], "features must be 'fashion' or 'inception'"),
        (["--grid", "uniform,cosine"], "unknown grid 'cosine'"),
        (["--grid", "levels"], "needs a process trained on selected levels"),
    ],
)
def test_bad_arguments_give_one_line_errors(run_dir: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    result = evaluate(run_dir, tmp_path, *extra)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "eval.json").exists()


def test_bad_checkpoint_and_bad_results_file(run_dir: Path, tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    missing = evaluate(tmp_path / "nothing-here", tmp_path / "out")
    assert missing.exit_code == 2 and "error:" in missing.output and "Traceback" not in missing.output
    (tmp_path / "eval.json").write_text("{not json")
    broken = evaluate(run_dir, tmp_path, "--steps", "2")
    assert broken.exit_code == 2 and "not a softdiff eval results file" in broken.output
    assert calls == []


def test_fashion_features_refuse_other_image_sizes(run_dir: Path, tmp_path: Path) -> None:
    """The shipped feature net takes 28x28 grey images: a 16x16 run asking for it gets a one-line error."""
    result = evaluate(run_dir, tmp_path, "--features", "fashion", "--sampler", "euler", "--steps", "1")
    assert result.exit_code == 2 and "fashion features take (N, 1, 28, 28)" in result.output


def test_parsers() -> None:
    assert parse_samplers(" naive, euler,naive ") == ["naive", "euler"]
    assert parse_steps("50,5, 10") == [50, 5, 10]
    with pytest.raises(ValueError, match="no sampler"):
        parse_samplers(" , ")
    assert torch.is_tensor(PooledPixels()(torch.zeros(2, 1, 16, 16, dtype=torch.uint8)))
