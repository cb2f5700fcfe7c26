"""``train.compile``: torch's compile modes (CUDA graphs among them) reach the trainer's network and every step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor, nn
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.data import synthetic_shapes
from softdiff.train import RunConfig, compilation, read_checkpoint, train

DATA = synthetic_shapes(64, size=8, seed=0)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv2d(2, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        time = t[:, None, None, None].expand(-1, 1, *x.shape[-2:]).to(x.dtype)
        return self.out(nn.functional.silu(self.inp(torch.cat([x, time], 1))))


def config(**train: object) -> RunConfig:
    return RunConfig.model_validate(
        {
            "corruption": {"spec": "blur"},
            "data": {"dataset": "synthetic", "prior_images": 64, "prior_rank": 4},
            "train": {"batch_size": 8, "steps": 3, "ckpt_every": 3, "preview_every": None, "device": "cpu", **train},
        }
    )


@pytest.mark.parametrize(
    ("given", "mode"),
    [("off", "off"), ("default", "default"), ("reduce-overhead", "reduce-overhead"), (True, "default"), (False, "off")],
)
def test_the_modes_and_the_old_booleans(given: object, mode: str) -> None:
    assert RunConfig.model_validate({"train": {"compile": given}}).train.compile == mode


def test_another_mode_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="train.compile"):
        RunConfig.model_validate({"train": {"compile": "cudagraphs"}})


@pytest.mark.parametrize(("mode", "marks"), [("off", 0), ("default", 0), ("reduce-overhead", 3)])
def test_the_trainer_compiles_in_the_runs_mode_and_marks_each_cuda_graph_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, marks: int
) -> None:
    compiled: list[tuple[nn.Module, str]] = []
    steps: list[int] = []

    def fake_compile(net: nn.Module, mode: str) -> nn.Module:
        compiled.append((net, mode))
        return net

    monkeypatch.setattr(compilation.torch, "compile", fake_compile)
    monkeypatch.setattr(compilation.torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append(1))
    net = TinyNet()
    summary = train(config(compile=mode), tmp_path / "run", data=DATA, net=net, progress=False)
    assert summary.step == 3
    assert compiled == ([] if mode == "off" else [(net, mode)])  # the training network, once, in the run's mode
    assert len(steps) == marks


def test_a_real_compiled_run_trains_like_eager_and_records_its_mode(tmp_path: Path) -> None:
    """``reduce-overhead`` on the CPU compiles as ``default`` (no CUDA graphs there), and trains like eager."""
    weights = {}
    for mode in ("off", "reduce-overhead"):
        torch.manual_seed(0)
        train(config(compile=mode), tmp_path / mode, data=DATA, net=TinyNet(), progress=False)
        ckpt = read_checkpoint(tmp_path / mode)
        assert ckpt.step == 3 and ckpt.config.train.compile == mode
        weights[mode] = ckpt.net
    assert weights["off"].keys() == weights["reduce-overhead"].keys()
    for name, weight in weights["off"].items():  # the same three steps, up to the fused kernels' rounding
        torch.testing.assert_close(weights["reduce-overhead"][name], weight, rtol=1e-3, atol=1e-4)


def test_the_cli_flag_takes_a_mode_and_refuses_others_in_one_line(tmp_path: Path) -> None:
    args = ["train", "--dataset", "synthetic", "--steps", "1", "--no-progress", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--compile", "cudagraphs"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and "train.compile" in result.output and "reduce-overhead" in result.output
    assert "Traceback" not in result.output
