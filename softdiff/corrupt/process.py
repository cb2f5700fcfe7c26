"""The forward process ``x_t = C_t x_0 + s_t * eta`` as one typed object."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import LinearCorruption, as_time, check_time_range
from .schedules import LevelTable, Schedule

__all__ = ["CorruptionProcess"]


@dataclass(frozen=True)
class CorruptionProcess:
    """An operator family ``C_t``, a noise schedule ``s_t`` and an optional time warp.

    ``warp`` (a :class:`LevelTable` of source times, as written by the level selector)
    re-times the whole process: level ``k`` of ``K`` sits at ``t = k / (K - 1)`` and
    corresponds to time ``warp(t)`` of the un-warped operator and noise schedules.
    """

    operator: LinearCorruption
    noise: Schedule
    warp: LevelTable | None = None

    def time(self, t: Tensor | float, x: Tensor) -> Tensor:
        """Validate ``t`` for the batch ``x`` and map it to the operator's own time."""
        t = as_time(t, x)
        return t if self.warp is None else self.warp(t)

    def C(self, x: Tensor, t: Tensor | float) -> Tensor:
        """Apply ``C_t``."""
        return self.operator.forward(x, self.time(t, x))

    def CT(self, y: Tensor, t: Tensor | float) -> Tensor:
        """Apply the adjoint ``C_t^T``."""
        return self.operator.adjoint(y, self.time(t, y))

    def dct_gains(self, t: Tensor | float, x: Tensor) -> Tensor | None:
        """``C_t``'s per-frequency DCT gains for images shaped like ``x`` (None unless DCT-diagonal)."""
        return self.operator.dct_gains(self.time(t, x), x.shape[-2], x.shape[-1])

    def s(self, t: Tensor | float) -> Tensor:
        """Noise level ``s_t`` (same shape as ``t``)."""
        t = torch.as_tensor(t, dtype=torch.get_default_dtype()) if not isinstance(t, Tensor) else t
        check_time_range(t)
        return self.noise(t if self.warp is None else self.warp(t))

    def corrupt(
        self,
        x0: Tensor,
        t: Tensor | float,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``x_t = C_t x_0 + s_t * eta`` (``eta`` given, or drawn from ``generator``)."""
        t = as_time(t, x0)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)} but x0 has shape {tuple(x0.shape)}")
        return self.C(x0, t) + self.s(t).to(x0.dtype)[:, None, None, None] * noise
