"""Constant tensors kept on each device and in each dtype they are used in.

A constant that lives on the CPU (a level table, the data's mean) and is moved with ``.to(x)``
at every call costs a host-to-device copy per call on a GPU, and a copy from pageable memory
waits for the GPU's queue to drain: a training step would stall at each one. ``DeviceCopies``
makes each copy once.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DeviceCopies", "upload"]


class DeviceCopies:
    """One constant ``value`` and its copies, one per ``(device, dtype)`` asked for (never modified in place)."""

    def __init__(self, value: Tensor) -> None:
        self.value = value
        self._copies: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def like(self, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """``value`` on ``x``'s device, in ``dtype`` (default: ``x``'s), copied on the first call only."""
        key = (x.device, dtype or x.dtype)
        copy = self._copies.get(key)
        if copy is None:
            copy = self._copies[key] = self.value.to(device=key[0], dtype=key[1])
        return copy


def upload(x: Tensor, device: torch.device) -> Tensor:
    """``x`` (on the CPU) on ``device``: through pinned memory, asynchronously, to a GPU.

    A plain ``.to("cuda")`` of pageable memory returns only once the GPU has caught up with
    its queue; from pinned memory the copy is queued like a kernel and the host goes on.
    """
    if device.type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)
