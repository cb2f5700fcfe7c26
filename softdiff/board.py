"""TensorBoard event files of a run (``RUN/tb``), the dashboard PyTorch users already run.

``tensorboard`` is an optional extra (``pip install 'softdiff[tensorboard]'``):
:func:`check_tensorboard` says how to install it in one line, before any data is
loaded, and :func:`open_board` opens ``torch.utils.tensorboard.SummaryWriter`` on the
run's ``tb`` folder. A resumed run purges the events logged after its checkpoint, so the
curves read as if it had never stopped (as ``metrics.jsonl`` does).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from torch import Tensor

__all__ = ["TB_DIR", "INSTALL_HINT", "check_tensorboard", "open_board", "Board"]

TB_DIR = "tb"
INSTALL_HINT = "pip install 'softdiff[tensorboard]' (or pip install tensorboard)"
SCALARS = ("loss", "lr", "grad_norm", "images_per_s", "skipped")  # the metrics.jsonl fields logged as train/NAME


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def check_tensorboard() -> None:
    """``ValueError`` with the install command when the ``tensorboard`` package is missing."""
    if not tensorboard_installed():
        raise ValueError(f"--tensorboard needs the tensorboard package, which is not installed: {INSTALL_HINT}")


class Board:
    """A thin writer: the metrics lines, the preview grids and eval FIDs under fixed tag names."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def metrics(self, record: dict[str, Any]) -> None:
        """One ``metrics.jsonl`` record as ``train/loss``, ``train/lr``, ... at its step (None values skipped)."""
        for key in SCALARS:
            value = record.get(key)
            if value is not None:
                self.writer.add_scalar(f"train/{key}", value, record["step"])
        self.writer.flush()

    def preview(self, grid: Tensor, step: int) -> None:
        """A preview grid, ``(C, H, W)`` uint8, as the image ``previews`` at ``step``."""
        self.writer.add_image("previews", grid, step, dataformats="CHW")
        self.writer.flush()

    def fid(self, result: dict[str, Any]) -> None:
        """One eval cell as ``eval/fid/SAMPLER/GRID/nfeN`` (and its KID) at the checkpoint's step."""
        tag = f"{result['sampler']}/{result.get('grid', 'uniform')}/nfe{result['nfe']}"
        step = result["checkpoint_step"]
        self.writer.add_scalar(f"eval/fid/{tag}", result["fid"], step)
        self.writer.add_scalar(f"eval/kid/{tag}", result["kid_mean"], step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_board(run_dir: str | Path, purge_step: int | None = None) -> Board:
    """The run's ``tb`` writer; ``purge_step`` (a resumed run's checkpoint step + 1) drops later events."""
    check_tensorboard()
    from torch.utils.tensorboard import SummaryWriter  # deferred: an optional package, 1-2 s to import

    return Board(SummaryWriter(log_dir=str(Path(run_dir) / TB_DIR), purge_step=purge_step))
