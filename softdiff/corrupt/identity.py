"""``C_t = I``: vanilla (variance-exploding) diffusion as a special case."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import LinearCorruption
from .diagonal import DiagonalForm, scalar_form

__all__ = ["Identity"]


class Identity(LinearCorruption):
    """The identity operator at every t."""

    is_identity = True

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        return y

    def diagonal_form(self) -> DiagonalForm:
        """Diagonal in every basis: composed with a blur it is the blur's form (``noise+blur``)."""
        return scalar_form(lambda t, shape: torch.ones(shape, dtype=t.dtype, device=t.device))
