"""``C_t = I``: vanilla (variance-exploding) diffusion as a special case."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import LinearCorruption

__all__ = ["Identity"]


class Identity(LinearCorruption):
    """The identity operator at every t."""

    is_identity = True

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        return y

    def dct_gains(self, t: Tensor, height: int, width: int) -> Tensor:
        return torch.ones(t.shape[0], 1, height, width, dtype=t.dtype, device=t.device)
