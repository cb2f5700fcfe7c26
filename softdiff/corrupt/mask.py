"""Masking ``C_t = diag(m_t)``: diagonal, hence self-adjoint; severity grows with t.

Kinds:
* ``"pixels"``: a fixed uniform random field ``u`` (seeded, one per image size) hides
  pixel ``p`` once ``u_p < f(t)``, so masks are nested in t and reproducible.
* ``"box"``: a centred box covering a fraction ``f(t)`` of the image area.
* ``"fade"``: every pixel scaled by ``1 - f(t)``, a soft multiplicative fade.

``f`` is the masked fraction, a schedule from 0 (nothing hidden) to ``max_fraction``.
The mask must be a function of t alone: a sampler applies ``C_t`` at other times to the
same image, so it may not depend on which sample it meets.
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
from torch import Tensor

from .base import LinearCorruption
from .diagonal import DiagonalForm, pixel_form
from .schedules import Linear, Schedule

__all__ = ["Mask"]

Kind = Literal["pixels", "box", "fade"]


@functools.lru_cache(maxsize=32)
def _random_field(seed: int, height: int, width: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(height, width, generator=generator, dtype=torch.float64)


class Mask(LinearCorruption):
    """Diagonal mask whose hidden fraction ``f(t)`` grows from 0 to ``max_fraction``."""

    strength_name = "mask_fraction"

    def __init__(
        self,
        kind: Kind = "pixels",
        max_fraction: float = 1.0,
        schedule: Schedule | None = None,
        seed: int = 0,
    ) -> None:
        if kind not in ("pixels", "box", "fade"):
            raise ValueError(f"unknown mask kind {kind!r}; choose 'pixels', 'box' or 'fade'")
        if not 0 <= max_fraction <= 1:
            raise ValueError(f"max_fraction must lie in [0, 1], got {max_fraction}")
        self.kind, self.max_fraction, self.seed = kind, float(max_fraction), int(seed)
        self.schedule: Schedule = schedule or Linear(0.0, max_fraction)

    @property
    def hides_pixels(self) -> bool:  # type: ignore[override]
        """Pixels and boxes vanish outright; ``"fade"`` only dims them, all together."""
        return self.kind != "fade" and self.max_fraction > 0

    def fraction(self, t: Tensor) -> Tensor:
        return self.schedule(t).clamp(0, 1)

    def strength(self, t: Tensor) -> Tensor:
        """The hidden fraction ``f(t)`` (reported per level by level selection)."""
        return self.fraction(t)

    def weights(self, t: Tensor, height: int, width: int) -> Tensor:
        """The diagonal ``m_t`` as a ``(B, 1, H, W)`` tensor of the dtype/device of ``t``."""
        f = self.fraction(t)[:, None, None, None]
        if self.kind == "fade":
            return (1 - f).expand(-1, 1, height, width)
        if self.kind == "pixels":
            u = _random_field(self.seed, height, width).to(t.device, t.dtype)
            return (u >= f).to(t.dtype)  # f = 0 keeps all pixels (u >= 0), f = 1 hides all
        # box: half-extent r = sqrt(f) / 2 in unit coordinates on pixel centres
        ys = (torch.arange(height, device=t.device, dtype=t.dtype) + 0.5) / height - 0.5
        xs = (torch.arange(width, device=t.device, dtype=t.dtype) + 0.5) / width - 0.5
        r = f.sqrt() / 2
        inside = (ys[:, None].abs() < r) & (xs[None, :].abs() < r)
        return (~inside).to(t.dtype)

    def diagonal_form(self) -> DiagonalForm:
        """Diagonal in the pixel basis, with the mask as gains."""
        return pixel_form(lambda t, shape: self.weights(t, shape[-2], shape[-1]).expand(shape))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x * self.weights(t.to(x.dtype), x.shape[-2], x.shape[-1])

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        return self.forward(y, t)
