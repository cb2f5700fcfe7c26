"""What a user watches while a run trains: preview grids and, with ``train.tensorboard``, TensorBoard.

The trainer calls :class:`Watch` after every metrics line and every step; on ranks other
than 0 it does nothing, so only rank 0 samples previews and writes event files under
torchrun. Time spent on a preview is kept out of the logged images/s (training speed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..board import Board, open_board
from ..corrupt import CorruptionProcess
from ..distributed import DistContext
from ..samplers.prior import Prior
from ..score import DataStatistics, Denoiser
from .config import RunConfig
from .metrics import LogWindow
from .previews import Previewer, drop_previews_after, preview_due

__all__ = ["Watch"]


class Watch:
    """Previews every ``train.preview_every`` steps and at the end; metrics and grids to TensorBoard."""

    def __init__(self, config: RunConfig, previewer: Previewer | None, board: Board | None) -> None:
        self.config, self.previewer, self.board = config, previewer, board

    @classmethod
    def open(
        cls,
        ctx: DistContext,
        config: RunConfig,
        run_dir: Path,
        ema_net: torch.nn.Module,
        process: CorruptionProcess,
        prior: Prior,
        stats: DataStatistics | None,
        resume_step: int | None,
    ) -> Watch:
        """Rank 0's watch (previews drawn with the EMA weights); an inert one on the other ranks."""
        if not ctx.is_main:
            return cls(config, None, None)
        tc = config.train
        previewer = None
        if resume_step is not None:
            drop_previews_after(run_dir, resume_step)
        if tc.preview_every is not None:
            autocast = torch.bfloat16 if tc.amp else None
            denoiser = Denoiser(ema_net, process, config.objective.parameterisation, autocast, stats)
            previewer = Previewer.build(config, run_dir, denoiser, process, prior, ctx.device)
        board = open_board(run_dir, None if resume_step is None else resume_step + 1) if tc.tensorboard else None
        return cls(config, previewer, board)

    def metrics(self, record: dict[str, Any]) -> None:
        if self.board is not None:
            self.board.metrics(record)

    def after_step(self, step: int, end: int, window: LogWindow) -> None:
        """The preview of ``step`` when one is due; its seconds are taken out of the window's images/s."""
        if self.previewer is None or not preview_due(self.config, step, end):
            return
        grid, record = self.previewer.write(step)
        window.start += record["seconds"]
        if self.board is not None and grid is not None:
            self.board.preview(grid, step)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
