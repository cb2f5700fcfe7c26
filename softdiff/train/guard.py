"""The non-finite guard: a step whose loss or gradient norm is NaN/inf changes nothing.

The decision stays on the device: the flag ``bad`` (1.0 or 0.0) goes to the fused AdamW
step as its ``found_inf`` (the same mechanism ``torch.amp.GradScaler`` uses: the kernel
leaves weights, moments and the step count untouched) and zeroes the EMA's weight, so a
skipped step costs no host synchronisation. The host learns about bad steps one step
late on a GPU (a non-blocking copy into pinned memory, read when the next step is already
queued) and at once on the CPU, counts consecutive ones, and tells the trainer to stop
when there are ``limit`` in a row.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..distributed import DistContext

__all__ = ["NonFiniteGuard", "gradient_norm"]


def gradient_norm(params: list[nn.Parameter], max_norm: float | None) -> Tensor:
    """The global gradient norm (before clipping), clipping the gradients to ``max_norm`` when given."""
    if max_norm is not None:
        return nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return nn.utils.get_total_norm(grads)


class NonFiniteGuard:
    """Flags steps with a non-finite loss or gradient and counts them on the host."""

    def __init__(self, limit: int, ctx: DistContext) -> None:
        self.limit, self.ctx = limit, ctx
        self.streak = 0  # consecutive bad steps seen by the host so far
        self.first_bad: int | None = None  # first step (1-based) of the current streak
        self.last_step = 0  # the latest step the host has seen
        self._lagged = ctx.device.type == "cuda"
        self._pending: tuple[int, Tensor, torch.cuda.Event] | None = None

    def flag(self, loss: Tensor, grad_norm: Tensor) -> Tensor:
        """``1.0`` (skip the update) when the loss or the gradient norm is not finite on any rank, else ``0.0``."""
        bad = (~torch.isfinite(loss.detach()) | ~torch.isfinite(grad_norm.detach())).float()
        if self.ctx.active:  # ranks see different losses; all of them must skip together
            bad = (self.ctx.mean(bad) > 0).float()
        return bad

    def record(self, step: int, bad: Tensor) -> bool:
        """Note step ``step``'s flag; True when ``limit`` consecutive bad steps have been seen (stop)."""
        if not self._lagged:
            return self._count(step, bool(bad))
        host = torch.empty((), dtype=bad.dtype, pin_memory=True)
        host.copy_(bad, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        previous, self._pending = self._pending, (step, host, event)
        return self._settle(previous)

    def flush(self) -> bool:
        """Count the flag still in flight (before a checkpoint and at the end); True to stop."""
        previous, self._pending = self._pending, None
        return self._settle(previous)

    def _settle(self, pending: tuple[int, Tensor, torch.cuda.Event] | None) -> bool:
        if pending is None:
            return self.streak >= self.limit
        step, host, event = pending
        event.synchronize()
        return self._count(step, bool(host))

    def _count(self, step: int, bad: bool) -> bool:
        self.last_step = step
        if bad:
            self.first_bad = step if self.streak == 0 else self.first_bad
            self.streak += 1
        else:
            self.streak, self.first_bad = 0, None
        return self.streak >= self.limit
