"""Training you can watch: preview grids (fixed seeds, kept across resume, never a NaN) and TensorBoard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_eval_cli import PooledPixels
from torch import Tensor, nn
from typer.testing import CliRunner

import softdiff.board as board
import softdiff.cli.eval as eval_cli
from softdiff.cli import app
from softdiff.data import synthetic_shapes
from softdiff.train import RunConfig, train
from softdiff.train.previews import PREVIEW_LOG, PREVIEWS, preview_due

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = synthetic_shapes(n=128, size=12, seed=0)
runner = CliRunner()


class TinyNet(nn.Module):
    """Two convolutions; ``nan_when_eval`` makes the EMA copy (always in eval mode) answer NaN."""

    def __init__(self, nan_when_eval: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Conv2d(2, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 1, 3, padding=1)
        self.nan_when_eval = nan_when_eval

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        time = t[:, None, None, None].expand(-1, 1, *x.shape[-2:]).to(x.dtype)
        y = self.out(nn.functional.silu(self.inp(torch.cat([x, time], 1))))
        return y * float("nan") if self.nan_when_eval and not self.training else y


def config(**train_section: object) -> RunConfig:
    return RunConfig.model_validate(
        {
            "data": {"dataset": "synthetic", "prior_images": 32, "prior_rank": 2, "prior_mixtures": 1},
            "optim": {"warmup": 2},
            "train": {"batch_size": 8, "log_every": 2, "ckpt_every": 4, "device": "cpu", "preview_every": 4,
                      "preview_steps": 2, **train_section},
        }
    )  # fmt: skip


def log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / PREVIEWS / PREVIEW_LOG).read_text().splitlines()]


def test_previews_come_every_n_steps_and_at_the_end_as_8x8_grids(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(config(steps=10), run, data=DATA, net=TinyNet(), progress=False)
    assert sorted(p.name for p in (run / PREVIEWS).glob("*.png")) == ["step-10.png", "step-4.png", "step-8.png"]
    side = 2 * (8 * (12 + 2) + 2)  # 8 images of 12 pixels with 2-pixel gaps, enlarged twice
    assert Image.open(run / PREVIEWS / "step-4.png").size == (side, side)
    records = log(run)
    assert [r["step"] for r in records] == [4, 8, 10]
    assert {(r["sampler"], r["steps"], r["n"]) for r in records} == {("dpmpp_2m_sde", 2, 64)}  # blur's at 2 steps
    assert len({r["seed"] for r in records}) == 1 and all(r["finite"] and r["seconds"] > 0 for r in records)
    # the grids differ only by the weights: the same seed, a different picture as training moves on
    assert (run / PREVIEWS / "step-4.png").read_bytes() != (run / PREVIEWS / "step-10.png").read_bytes()


def test_a_resumed_run_draws_the_previews_an_uninterrupted_one_draws(tmp_path: Path) -> None:
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    train(config(steps=10, preview_every=3), full, data=DATA, net=TinyNet(), progress=False)
    train(config(steps=10, preview_every=3), crashed, data=DATA, net=TinyNet(), progress=False, stop_at=7)
    assert [r["step"] for r in log(crashed)] == [3, 6]  # the last checkpoint is step 4's
    (crashed / PREVIEWS / "step-6.png").unlink()  # drawn after that checkpoint: the resumed run draws it again
    train(None, crashed, resume=True, data=DATA, net=TinyNet(), progress=False)
    for step in (3, 6, 9, 10):
        name = f"step-{step}.png"
        assert (crashed / PREVIEWS / name).read_bytes() == (full / PREVIEWS / name).read_bytes(), name
    assert [r["step"] for r in log(crashed)] == [3, 6, 9, 10]  # step 6's line from before the crash was dropped
    assert [r["seed"] for r in log(crashed)] == [r["seed"] for r in log(full)]


def test_previews_can_be_turned_off_and_do_not_change_training(tmp_path: Path) -> None:
    run, watched = tmp_path / "run", tmp_path / "watched"
    quiet = train(config(steps=4, preview_every=None), run, data=DATA, net=TinyNet(), progress=False)
    assert not (run / PREVIEWS).exists()
    seen = train(config(steps=4, preview_every=2), watched, data=DATA, net=TinyNet(), progress=False)
    assert len(log(watched)) == 2 and seen.losses == quiet.losses
    for a, b in zip(seen.ema_net.parameters(), quiet.ema_net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert preview_due(config(steps=10), 10, 10) and not preview_due(config(steps=10), 9, 9)


def test_a_non_finite_preview_is_not_written(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(config(steps=4), run, data=DATA, net=TinyNet(nan_when_eval=True), progress=False)
    assert not list((run / PREVIEWS).glob("*.png"))
    assert [(r["step"], r["finite"], r["file"]) for r in log(run)] == [(4, False, None)]


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    out = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    out["images"] = [(e.step, e.width) for tag in events.Tags()["images"] for e in events.Images(tag)]
    return out


def test_tensorboard_logs_the_metrics_lines_and_the_previews(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    train(config(steps=8, tensorboard=True), run, data=DATA, net=TinyNet(), progress=False, stop_at=6)
    train(config(steps=8, tensorboard=True), run, resume=True, data=DATA, net=TinyNet(), progress=False)
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    found = scalars(run)
    for key in ("loss", "lr", "grad_norm", "images_per_s", "skipped"):
        # step 6, logged before the crash and again after the resume from step 4, appears once (purged)
        assert [s for s, _ in found[f"train/{key}"]] == [2, 4, 6, 8], key
    assert [v for _, v in found["train/loss"]] == pytest.approx([m["loss"] for m in logged], rel=1e-6)
    assert [v for _, v in found["train/lr"]] == pytest.approx([m["lr"] for m in logged], rel=1e-6)
    assert [s for s, _ in found["images"]] == [4, 8]


def test_eval_logs_its_new_cells_to_the_runs_tensorboard(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("tensorboard")
    monkeypatch.setattr(eval_cli, "get_extractor", lambda features, inception_weights=None: PooledPixels())
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    args = ["eval", "--ckpt", str(run), "-n", "6", "--sampler", "naive", "--steps", "2,3", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--no-progress", "--cache-dir", str(tmp_path / "cache"), "--tensorboard"])
    assert result.exit_code == 0, result.output
    cells = json.loads((run / "eval" / "eval.json").read_text())["results"]
    found = scalars(run)
    for cell in cells:
        assert found[f"eval/fid/naive/uniform/nfe{cell['nfe']}"] == [(2, pytest.approx(cell["fid"], rel=1e-6))]


def test_tensorboard_without_the_package_is_one_line_that_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_dir: Path
) -> None:
    monkeypatch.setattr(board, "tensorboard_installed", lambda: False)
    out = tmp_path / "run"
    for args in (
        ["train", "--dataset", "synthetic", "--steps", "1", "--out", str(out), "--tensorboard"],
        ["eval", "--ckpt", str(run_dir), "--out", str(tmp_path / "eval"), "--tensorboard"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert "pip install 'softdiff[tensorboard]'" in lines[0]
        assert "Traceback" not in result.output
    assert not out.exists()  # refused before the run folder was made
