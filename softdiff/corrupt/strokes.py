"""Brush-stroke inpainting ``C_t = diag(m_t)``: strokes painted one after another as t grows.

A fixed set of brush strokes (smooth random curves, reproducible from ``seed`` and the image
size) is painted along its length; a pixel is hidden once the brush has passed over it.
Each pixel therefore has an *ink time* ``u_p`` in [0, 1) (``inf`` if no stroke reaches it),
and ``m_t(p) = 1[u_p >= f(t)]`` with ``f`` the fraction of the brush path drawn. So masks
are nested in t (what is hidden stays hidden), ``C_0 = I`` exactly, and the diagonal map
is self-adjoint. As for :class:`Mask`, the mask depends on t and the image size only.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .base import LinearCorruption
from .schedules import Linear, Schedule

__all__ = ["Strokes"]

_STEP = 0.5  # pixels between brush positions: a continuous stroke for any brush of radius >= 0.75 px
_BEND = 1.2  # standard deviation of a stroke's total change of heading, in radians


@functools.lru_cache(maxsize=32)
def _ink_times(seed: int, height: int, width: int, strokes: int, brush: float, length: float) -> Tensor:
    """``(H, W)`` float64: the fraction of the brush path drawn when each pixel is first covered."""
    g = torch.Generator().manual_seed(seed)
    side = min(height, width)
    size = torch.tensor([height, width], dtype=torch.float64)
    radius = max(0.75, 0.5 * brush * side)
    n = max(2, math.ceil(length * side / _STEP))
    paths = []
    for _ in range(strokes):
        start = (0.15 + 0.7 * torch.rand(2, generator=g, dtype=torch.float64)) * size
        turns = torch.randn(n - 1, generator=g, dtype=torch.float64) * (_BEND / math.sqrt(n))
        heading = 2 * math.pi * torch.rand(1, generator=g, dtype=torch.float64) + turns.cumsum(0)
        moves = _STEP * torch.stack([torch.sin(heading), torch.cos(heading)], dim=1)  # (dy, dx)
        paths.append(torch.cat([start[None], start + moves.cumsum(0)]))
    points = torch.cat(paths)  # painting order, (P, 2) as (y, x) in pixels
    ink = torch.arange(len(points), dtype=torch.float64) / len(points)
    # each brush position covers the pixel centres within `radius`: look only at its own window
    reach = torch.arange(-math.ceil(radius) - 1, math.ceil(radius) + 2)
    dy, dx = (v.flatten() for v in torch.meshgrid(reach, reach, indexing="ij"))
    iy = points[:, :1].floor().long() + dy  # (P, window)
    ix = points[:, 1:].floor().long() + dx
    near = (iy + 0.5 - points[:, :1]) ** 2 + (ix + 0.5 - points[:, 1:]) ** 2 <= radius**2
    inside = near & (iy >= 0) & (iy < height) & (ix >= 0) & (ix < width)
    first = torch.full((height * width,), math.inf, dtype=torch.float64)
    index = (iy * width + ix)[inside]
    first.scatter_reduce_(0, index, ink[:, None].expand_as(inside)[inside], reduce="amin")
    return first.reshape(height, width)


class Strokes(LinearCorruption):
    """Hide the pixels under ``strokes`` brush strokes of width ``brush`` and length ``length``.

    ``brush`` and ``length`` are fractions of the shorter image side. ``f(t)`` (default
    ``max_fraction * t``) is the fraction of the brush path drawn at ``t``.
    """

    strength_name = "strokes_drawn"
    hides_pixels = True

    def __init__(
        self,
        strokes: int = 8,
        brush: float = 0.1,
        length: float = 0.6,
        max_fraction: float = 1.0,
        schedule: Schedule | None = None,
        seed: int = 0,
    ) -> None:
        if strokes < 1:
            raise ValueError(f"strokes must be at least 1, got {strokes}")
        if brush <= 0 or length <= 0:
            raise ValueError(f"brush width and stroke length must be > 0, got brush={brush}, length={length}")
        if not 0 <= max_fraction <= 1:
            raise ValueError(f"max_fraction must lie in [0, 1], got {max_fraction}")
        self.strokes, self.brush, self.length = int(strokes), float(brush), float(length)
        self.max_fraction, self.seed = float(max_fraction), int(seed)
        self.schedule: Schedule = schedule or Linear(0.0, max_fraction)

    def strength(self, t: Tensor) -> Tensor:
        """The fraction of the brush path drawn, ``f(t)``."""
        return self.schedule(t).clamp(0, 1)

    def ink_times(self, height: int, width: int) -> Tensor:
        """Per pixel, the drawn fraction at which it is hidden (``inf``: never); float64 on the CPU."""
        return _ink_times(self.seed, height, width, self.strokes, self.brush, self.length)

    def weights(self, t: Tensor, height: int, width: int) -> Tensor:
        """The diagonal ``m_t`` as a ``(B, 1, H, W)`` 0/1 tensor of the dtype/device of ``t``."""
        f = self.strength(t)[:, None, None, None]
        u = self.ink_times(height, width).to(t.device, t.dtype)  # the cached field follows the input
        return (u >= f).to(t.dtype)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x * self.weights(t.to(x.dtype), x.shape[-2], x.shape[-1])

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        return self.forward(y, t)
