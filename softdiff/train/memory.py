"""What a training step must hold, predicted before anything is allocated.

The network is run once on PyTorch's ``meta`` device (shapes only, no memory, milliseconds)
under a saved-tensor hook that adds up what autograd keeps for the backward pass. That
sum (less the weights, counted apart) is a lower bound of a step's peak, so refusing a
batch whose bound exceeds the device's memory never refuses one that would have fitted.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["saved_activation_bytes"]


def _saved_bytes(net: nn.Module, shape: tuple[int, int, int], batch: int) -> int:
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.zeros(batch, *shape, device="meta"), torch.zeros(batch, device="meta"))
    return total


def saved_activation_bytes(net: nn.Module, shape: tuple[int, int, int], batch: int, amp: bool = False) -> int:
    """Bytes autograd saves for ``batch`` images of ``shape`` that grow with the batch; ``net`` lives on meta.

    Two probes (2 and 4 images) split the saved tensors into a part that grows with the batch
    and one that does not: the weights, which convolutions save for their backward and which
    the caller counts already. Under bf16 autocast most saved tensors are half as wide, so
    the bound is halved to stay a bound.
    """
    per_image = (_saved_bytes(net, shape, 4) - _saved_bytes(net, shape, 2)) // 2
    return per_image * batch // (2 if amp else 1)
