"""Stopping and checkpointing on time: SIGTERM/SIGINT end the run after the current step, with a checkpoint.

Schedulers (SLURM, Kubernetes, cloud preemption) send SIGTERM and kill a little later.
:class:`StopSignals` turns the first SIGTERM or SIGINT into a request that the trainer
honours after the step in progress: it writes a checkpoint and returns. A second signal
interrupts at once (``KeyboardInterrupt``), for a user who really means it.

:class:`StepClock` decides, after every step, whether to stop and whether a checkpoint is
due because ``train.ckpt_minutes`` have passed since the last one. Under torchrun the
ranks must take the same decision at the same step (the checkpoint is a collective, and
a rank that stopped alone would leave the others waiting): rank 0's clock decides the
time, any rank's signal decides the stop, and one tiny all-reduce on a CPU (gloo) group
shares both every step, so a GPU run pays no device synchronisation for it.
"""

from __future__ import annotations

import signal
import threading
from time import monotonic
from types import FrameType

import torch
import torch.distributed as dist

from ..distributed import DistContext

__all__ = ["StopSignals", "StepClock", "SIGNAL_EXIT"]

SIGNAL_EXIT = 128  # shell convention: a run stopped by signal N exits with 128 + N


class StopSignals:
    """A ``with`` block during which SIGTERM/SIGINT request a stop instead of killing the process."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received is not None else None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # the second signal: stop now
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()


class StepClock:
    """After each step: stop (a signal arrived on some rank)? checkpoint (``minutes`` passed on rank 0)?"""

    def __init__(self, signals: StopSignals, minutes: float | None, ctx: DistContext) -> None:
        self.signals, self.ctx = signals, ctx
        self.seconds = None if minutes is None else minutes * 60.0
        self.last_checkpoint = monotonic()
        self._group = None
        if ctx.active:  # a CPU group for the decisions: no device sync even when training runs on NCCL
            self._group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")

    def checkpointed(self) -> None:
        """Restart the timer (a checkpoint was just written)."""
        self.last_checkpoint = monotonic()

    def poll(self) -> tuple[str | None, bool]:
        """``(signal name or None, checkpoint_due)``, the same on every rank (the highest signal number wins)."""
        received = self.signals.received or 0
        due = self.ctx.is_main and self.seconds is not None and monotonic() - self.last_checkpoint >= self.seconds
        if self.ctx.active:
            flags = torch.tensor([received, int(due)])
            dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self._group)
            received, due = int(flags[0]), bool(flags[1])
        return (signal.Signals(received).name if received else None), due
