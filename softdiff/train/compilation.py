"""``torch.compile`` of the training network in the run's mode (``train.compile``), and CUDA graphs' step marks.

One home for both, so the trainer and the benchmarks' bare loops compile alike. The modes are
torch's: ``default`` fuses kernels; ``reduce-overhead`` also replays the network's forward and
backward as CUDA graphs, which removes the per-kernel launch cost that dominates a small network
on a GPU (on the CPU it compiles as ``default``); ``max-autotune`` searches kernel configurations
as well (minutes of compilation).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import CompileMode

__all__ = ["compiled", "mark_step"]


def compiled(net: nn.Module, mode: CompileMode) -> nn.Module:
    """``net`` itself when ``mode`` is ``off``, else its ``torch.compile`` in that mode."""
    if mode == "off":
        return net
    return torch.compile(net, mode=mode)  # type: ignore[return-value]


def mark_step(mode: CompileMode) -> None:
    """Start a training step: CUDA graphs may then reuse the previous step's output buffers.

    Without the mark, torch cannot tell a new step from a second call within one, and keeps
    every step's outputs alive (or refuses to overwrite them).
    """
    if mode == "reduce-overhead":
        torch.compiler.cudagraph_mark_step_begin()
