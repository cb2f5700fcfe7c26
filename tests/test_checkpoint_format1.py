"""A checkpoint written before the training state was split into components still loads and resumes exactly.

``fixtures/format1-run`` is a run folder written by softdiff at commit 91cc73f (one
``state.pt`` holding the optimiser, the RNG state, the step and the logging window):
``softdiff train --dataset synthetic --steps 4 --batch-size 8 --width 4 --set model.groups=4
--set train.select_levels=false --set train.ckpt_every=2``, cut back to its step-2
checkpoint as if killed there. ``step4-*`` are what that run wrote at step 4. Resuming the
old checkpoint with today's code must reach the same weights and log the same loss: a
lost optimiser state, RNG state or logging window would change them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.train import read_checkpoint

FIXTURE = Path(__file__).parent / "fixtures" / "format1-run"


def test_an_old_checkpoint_reads_with_its_training_state(tmp_path: Path) -> None:
    ckpt = read_checkpoint(FIXTURE / "run")
    assert ckpt.step == 2 and ckpt.state["step"] == 2 and ckpt.state["world_size"] == 1
    assert ckpt.state["window"] == {"loss": 0.360181987285614, "good": 2.0, "steps": 2}
    assert set(ckpt.state["optimizer"]) == {"state", "param_groups"}
    assert ckpt.state["rng"]["torch"].dtype == torch.uint8


def test_an_old_checkpoint_resumes_to_the_weights_and_loss_it_would_have_reached(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE / "run", run)
    args = ["train", "--out", str(run), "--resume", "--device", "cpu", "--threads", "1", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    resumed = read_checkpoint(run)
    assert resumed.step == 4
    for name in ("net", "ema"):
        expected = load_file(FIXTURE / f"step4-{name}.safetensors")
        got = getattr(resumed, name)
        assert expected.keys() == got.keys()
        for key, value in expected.items():  # the same machine gives the same bits; others may round differently
            assert torch.allclose(got[key], value, rtol=0, atol=1e-6), (name, key)
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    wanted = json.loads((FIXTURE / "step4-metrics.jsonl").read_text())
    assert logged[-1]["step"] == 4 and abs(logged[-1]["loss"] - wanted["loss"]) < 1e-6
