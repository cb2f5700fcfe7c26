"""Desaturation ``C_t``: colours fade towards their luminance, grey images are left alone.

Per pixel, over channels: ``C_t x = (1 - f) x + f * 1 (w . x)`` with luminance weights
``w`` (summing to 1: BT.601 for RGB, given ones for any other channel count) and
``f = f(t)`` from 0 to ``max_fraction``. ``1 w^T`` is a rank-one
projection that is not symmetric unless ``w`` is uniform, so the adjoint is its own closed
form ``C_t^T y = (1 - f) y + f * w (1 . y)``. A grey image (one channel, or equal channels)
is a fixed point at every ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .base import LinearCorruption
from .schedules import Linear, Schedule

__all__ = ["Desaturate", "REC601"]

REC601 = (0.299, 0.587, 0.114)  # luma weights of ITU-R BT.601 for RGB


class Desaturate(LinearCorruption):
    """Blend every pixel's colour towards its luminance; ``f(t)`` is the blend fraction."""

    strength_name = "desaturate_fraction"

    def __init__(
        self, max_fraction: float = 1.0, weights: Sequence[float] | None = None, schedule: Schedule | None = None
    ) -> None:
        if not 0 <= max_fraction <= 1:
            raise ValueError(f"max_fraction must lie in [0, 1], got {max_fraction}")
        if weights is not None:
            weights = tuple(float(w) for w in weights)
            if not weights or not math.isclose(sum(weights), 1.0, abs_tol=1e-9):
                raise ValueError(f"luminance weights must sum to 1 (so grey stays grey), got {weights}")
        self.max_fraction, self.weights = float(max_fraction), weights
        self.schedule: Schedule = schedule or Linear(0.0, max_fraction)

    def strength(self, t: Tensor) -> Tensor:
        """The blend fraction ``f(t)`` in [0, 1]."""
        return self.schedule(t).clamp(0, 1)

    def luminance_weights(self, channels: int) -> tuple[float, ...]:
        """``w`` for images with ``channels`` channels: the given weights, else BT.601 for RGB.

        Other channel counts have no luminance (RGBA, grey + alpha, 5 spectral bands): a guess
        such as the channel mean would blend alpha into colour, so they need ``weights``.
        """
        if self.weights is not None:
            if len(self.weights) != channels:
                raise ValueError(f"desaturate has {len(self.weights)} weights but the images have {channels} channels")
            return self.weights
        if channels != 3:
            raise ValueError(
                f"desaturate blends RGB colours towards their luminance; images of {channels} channels have none: "
                "give one weight per channel (spec softdiff.corrupt:Desaturate, --set corruption.params.weights=[...])"
            )
        return REC601

    def _parts(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        w = torch.tensor(self.luminance_weights(x.shape[1]), dtype=x.dtype, device=x.device)[None, :, None, None]
        return w, self.strength(t.to(x.dtype))[:, None, None, None]

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if x.shape[1] == 1:
            return x
        w, f = self._parts(x, t)
        return (1 - f) * x + f * (w * x).sum(1, keepdim=True)

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        if y.shape[1] == 1:
            return y
        w, f = self._parts(y, t)
        return (1 - f) * y + f * w * y.sum(1, keepdim=True)
