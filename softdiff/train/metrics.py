"""The run's ``metrics.jsonl``: one line per ``log_every`` steps, exact across resumes.

The losses of the steps since the last line stay on the device (:class:`LogWindow`, no
host synchronisation per step); a checkpoint keeps the partial window, and a resumed run
drops the lines logged after its checkpoint (:func:`start_metrics`), so the file reads as
if the run had never stopped.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch import Tensor

from ..distributed import DistContext
from ..imageio import atomic_write_bytes

__all__ = ["METRICS", "LogWindow", "start_metrics"]

METRICS = "metrics.jsonl"


def start_metrics(path: Path, resume_step: int | None) -> list[tuple[int, float]]:
    """Fresh file, or on resume drop lines logged after the checkpoint (they will be redone).

    Returns the ``(step, loss)`` pairs kept, so a resumed summary covers the whole run.
    """
    kept: list[str] = []
    losses: list[tuple[int, float]] = []
    if resume_step is not None and path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
                if record["step"] <= resume_step:
                    kept.append(line)
                    if record["loss"] is not None:  # None: every step of that window was skipped
                        losses.append((record["step"], record["loss"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a crash
    atomic_write_bytes(path, "".join(f"{line}\n" for line in kept).encode())
    return losses


class LogWindow:
    """The losses of the steps since the last metrics line, kept on the device (no sync per step)."""

    def __init__(self, device: torch.device, state: dict | None = None) -> None:
        self.loss = torch.zeros((), device=device)
        self.good = torch.zeros((), device=device)
        self.steps, self.start = 0, time.perf_counter()
        if isinstance(state, dict):  # restored from a checkpoint taken between two metrics lines
            self.loss += float(state.get("loss", 0.0))
            self.good += float(state.get("good", 0.0))
            self.steps = int(state.get("steps", 0))

    def add(self, loss: Tensor, bad: Tensor) -> None:
        self.loss += torch.where(bad > 0, 0.0, loss.detach())
        self.good += 1 - bad
        self.steps += 1

    def state(self, ctx: DistContext) -> dict[str, float]:
        """What a checkpoint keeps of the window (the loss as the mean over ranks, as it will be logged)."""
        return {"loss": float(ctx.mean(self.loss)), "good": float(self.good), "steps": self.steps}

    def line(
        self, ctx: DistContext, step: int, lr: float, grad_norm: Tensor, batch: int, started: float
    ) -> tuple[dict, float | None]:
        """The metrics record of the window (mean loss over its good steps), and reset."""
        good = float(self.good)
        total = float(ctx.mean(self.loss))
        mean_loss = total / good if good > 0 else None
        now = time.perf_counter()
        norm = float(grad_norm)
        record = {
            "step": step,
            "loss": mean_loss,
            "lr": lr,
            "grad_norm": norm if math.isfinite(norm) else None,
            "images_per_s": self.steps * batch / max(now - self.start, 1e-9),
            "elapsed_s": now - started,
            "skipped": int(round(self.steps - good)),
        }
        self.loss.zero_()
        self.good.zero_()
        self.steps, self.start = 0, now
        return record, mean_loss
