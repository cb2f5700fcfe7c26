"""Fade to the mean ``C_t``: the image loses its contrast and keeps only its average grey.

``C_t x = (1 - f) x + f * mean(x)`` with ``f = f(t)`` from 0 to ``max_fraction``; the mean
is over the whole image (all channels and pixels), or per channel with
``per_channel=True``. ``x -> mean(x) 1`` is the orthogonal projection onto constant
images, which is symmetric, so ``C_t`` is self-adjoint. Unlike ``Mask(kind="fade")``,
which fades every image to zero (mid-grey for data in [-1, 1]), this keeps each image's
own brightness: ``C_1`` with ``max_fraction=1`` leaves one number per image (per channel).
"""

from __future__ import annotations

from torch import Tensor

from .base import LinearCorruption
from .schedules import Linear, Schedule

__all__ = ["FadeToMean"]


class FadeToMean(LinearCorruption):
    """Blend every image towards its own mean; ``f(t)`` is the blend fraction."""

    strength_name = "fade_fraction"

    def __init__(self, max_fraction: float = 1.0, per_channel: bool = False, schedule: Schedule | None = None) -> None:
        if not 0 <= max_fraction <= 1:
            raise ValueError(f"max_fraction must lie in [0, 1], got {max_fraction}")
        self.max_fraction, self.per_channel = float(max_fraction), bool(per_channel)
        self.schedule: Schedule = schedule or Linear(0.0, max_fraction)

    def strength(self, t: Tensor) -> Tensor:
        """The blend fraction ``f(t)`` in [0, 1]."""
        return self.schedule(t).clamp(0, 1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        f = self.strength(t.to(x.dtype))[:, None, None, None]
        mean = x.mean(dim=(-2, -1) if self.per_channel else (1, 2, 3), keepdim=True)
        return (1 - f) * x + f * mean

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        return self.forward(y, t)
