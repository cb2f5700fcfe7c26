"""A training batch that cannot fit is refused before anything is allocated (issue 24's bad input)."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from softdiff.cli.app import app
from softdiff.train import RunConfig
from softdiff.train.memory import saved_activation_bytes
from softdiff.train.trainer import build_net

runner = CliRunner()


def _saved_on_cpu(net: torch.nn.Module, batch: int) -> int:
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.randn(batch, 1, 16, 16), torch.rand(batch))
    return saved


def test_the_meta_prediction_is_what_autograd_saves_per_image_on_real_tensors() -> None:
    config = RunConfig().resolved(1, 16)
    net = build_net(config)
    with torch.device("meta"):
        probe = build_net(config)
    grows = _saved_on_cpu(net, 7) - _saved_on_cpu(net, 1)  # the weights a convolution saves do not grow
    assert saved_activation_bytes(probe, (1, 16, 16), 6) == grows > 0
    assert saved_activation_bytes(probe, (1, 16, 16), 6, amp=True) == grows // 2


def test_a_batch_beyond_memory_is_one_error_line_before_training(tmp_path: Path) -> None:
    args = ["train", "--dataset", "synthetic", "--image-size", "16", "--steps", "1", "--threads", "1"]
    result = runner.invoke(app, [*args, "--batch-size", "10000000", "--out", str(tmp_path / "run")])
    line = result.output.replace("\n", "")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert line.startswith("error: a training step of 10,000,000 images per process"), result.output
    assert "--batch-size" in line and not (tmp_path / "run" / "checkpoints").exists()
