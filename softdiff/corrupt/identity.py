"""``C_t = I``: vanilla (variance-exploding) diffusion as a special case."""

from __future__ import annotations

from torch import Tensor

from .base import LinearCorruption

__all__ = ["Identity"]


class Identity(LinearCorruption):
    """The identity operator at every t."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        return y
