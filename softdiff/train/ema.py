"""The exponential moving average of the network's weights that samples are drawn with."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

__all__ = ["EMA"]

_Lists = tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]  # EMA and trained parameters, then buffers


class EMA:
    """Exponential moving average of a network's weights.

    EDM's rule (Karras et al. 2022): after ``images`` training images in all, the average
    has a half-life of ``min(halflife, rampup * images)`` images, so each update of
    ``batch`` images decays it by ``0.5 ** (batch / half-life)``. The ramp-up makes a short run
    average over its recent past instead of its poor start, and a half-life counted in images
    does not change with the batch or world size. ``decay`` (a fixed per-step value, warmed up
    as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates) replaces the rule when given.
    """

    def __init__(
        self, net: nn.Module, halflife: float = 500_000, rampup: float | None = 0.05, decay: float | None = None
    ) -> None:
        self.halflife, self.rampup, self.decay = halflife, rampup, decay
        self.net = copy.deepcopy(net).eval().requires_grad_(False)
        self._lists: tuple[nn.Module, nn.Module, _Lists] | None = None

    def decay_at(self, updates: int, batch: int) -> float:
        """The decay of update number ``updates`` (from 1), each of ``batch`` images in all."""
        if self.decay is not None:
            return min(self.decay, (1 + updates) / (10 + updates))
        halflife = self.halflife if self.rampup is None else min(self.halflife, self.rampup * updates * batch)
        return 0.5 ** (batch / halflife)

    @torch.no_grad()
    def update(self, net: nn.Module, updates: int, batch: int, skip: Tensor | None = None) -> None:
        """Move towards ``net`` after its ``updates``-th update; a ``skip`` flag of 1 (on the device) leaves it."""
        decay = self.decay_at(updates, batch)
        ema_p, params, ema_b, buffers = self._tensors(net)
        if skip is None:
            torch._foreach_lerp_(ema_p, params, 1.0 - decay)
        else:  # ema += w (p - ema) with w on the device: a tensor weight given to lerp would be read by the host
            step = torch._foreach_sub(params, ema_p)
            torch._foreach_mul_(step, (1.0 - decay) * (1 - skip))
            torch._foreach_add_(ema_p, step)
        if buffers:
            torch._foreach_copy_(ema_b, buffers)

    def _tensors(self, net: nn.Module) -> _Lists:
        """Both networks' parameters and buffers, listed once per pair of networks.

        Walking the modules at every update cost about 2 ms a step on the small network (a
        tenth of a step whose kernels are launch-bound on a GPU). Under ``no_grad`` the
        parameters themselves can be read, so no per-step ``detach`` either.
        """
        if self._lists is None or self._lists[0] is not net or self._lists[1] is not self.net:
            ema_b, buffers = list(self.net.buffers()), list(net.buffers())
            if len(ema_b) != len(buffers):
                raise ValueError(f"the EMA network has {len(ema_b)} buffers, the trained one {len(buffers)}")
            lists = (list(self.net.parameters()), list(net.parameters()), ema_b, buffers)
            self._lists = (net, self.net, lists)
        return self._lists[2]
