"""Linear motion blur ``C_t``: the image averaged along a segment of fixed angle and length ``L(t)``.

The kernel is ``n`` equally spaced points on the segment (``n`` fixed by ``max_length``,
spacing <= 0.5 px), each splatted bilinearly onto the pixel grid, so it is a continuous
function of ``L`` and a single unit tap at ``L = 0``: ``C_0 = I``. It is applied by FFT, exact
for any length: with ``border="circular"`` the image wraps around; with ``"constant"`` it is
padded with zeros (enough for the longest kernel in the batch, which changes nothing but
rounding). Either way the adjoint is the same blur with the **flipped** kernel (every point
``p`` replaced by ``-p``). A centred segment is its own flip; ``centred=False`` blurs along
``[0, L]``, the trail of a point moving in direction ``angle``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from .base import LinearCorruption
from .schedules import Linear, Schedule

__all__ = ["MotionBlur"]

Border = Literal["circular", "constant"]


class MotionBlur(LinearCorruption):
    """Motion blur along ``angle`` degrees (counter-clockwise from +x) of length ``L(t)`` pixels.

    ``L(t)`` defaults to ``max_length * t``; with your own ``schedule``, set ``max_length``
    to its largest value, which fixes the number of points on the segment.
    """

    strength_name = "motion_length"

    def __init__(
        self,
        max_length: float = 10.0,
        angle: float = 30.0,
        centred: bool = True,
        border: Border = "circular",
        schedule: Schedule | None = None,
    ) -> None:
        if not (math.isfinite(max_length) and max_length >= 0):
            raise ValueError(f"max_length must be a finite length >= 0 in pixels, got {max_length}")
        if not math.isfinite(angle):
            raise ValueError(f"angle must be a finite number of degrees, got {angle}")
        if border not in ("circular", "constant"):
            raise ValueError(f"unknown border {border!r}; choose 'circular' or 'constant' (their adjoint is exact)")
        self.max_length, self.angle, self.centred, self.border = float(max_length), float(angle), bool(centred), border
        self.schedule: Schedule = schedule or Linear(0.0, max_length)
        self._points = max(1, math.ceil(2 * max_length) + 1)

    def strength(self, t: Tensor) -> Tensor:
        """The blur length ``L(t)`` in pixels."""
        return self.schedule(t).clamp_min(0)

    def offsets(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(dy, dx)`` of the kernel's points, each ``(B, n)``, in pixels (y points down)."""
        n = self._points
        frac = torch.linspace(0, 1, n, dtype=t.dtype, device=t.device) if n > 1 else t.new_zeros(1)
        along = self.strength(t)[:, None] * (frac - 0.5 if self.centred else frac)  # (B, n)
        theta = math.radians(self.angle)
        return -math.sin(theta) * along, math.cos(theta) * along

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self._blur(x, t, flip=False)

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        return self._blur(y, t, flip=True)

    def _blur(self, x: Tensor, t: Tensor, flip: bool) -> Tensor:
        dy, dx = self.offsets(t.to(x.dtype))
        if flip:
            dy, dx = -dy, -dx
        b, c, h, w = x.shape
        pad = 0 if self.border == "circular" else int(torch.cat([dy, dx]).abs().max().ceil()) + 1
        grid = (h + pad, w + pad)
        kernel = _splat(dy, dx, grid)  # (B, H', W')
        if pad:
            x = torch.nn.functional.pad(x, (0, pad, 0, pad))
        spectrum = torch.fft.rfft2(x) * torch.fft.rfft2(kernel)[:, None]
        return torch.fft.irfft2(spectrum, s=grid)[..., :h, :w].contiguous()


def _splat(dy: Tensor, dx: Tensor, grid: tuple[int, int]) -> Tensor:
    """Per-sample ``(B, H, W)`` kernels: unit mass shared by the points, bilinear, wrapped around."""
    b, n = dy.shape
    h, w = grid
    y0, x0 = dy.floor(), dx.floor()
    fy, fx = dy - y0, dx - x0
    kernel = dy.new_zeros(b, h * w)
    for oy, wy in ((0, 1 - fy), (1, fy)):
        for ox, wx in ((0, 1 - fx), (1, fx)):
            index = ((y0.long() + oy) % h) * w + (x0.long() + ox) % w
            kernel.scatter_add_(1, index, wy * wx / n)
    return kernel.reshape(b, h, w)
