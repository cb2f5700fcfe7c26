"""The learning rate at each step: linear warm-up, then constant, cosine or linear decay.

A pure function of the step (no state to save), so a resumed run continues at exactly the
same rates; resuming with more ``--steps`` stretches a decay from then on. (Not called a
schedule: in softdiff that word is the corruption's strength against ``t``.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["LearningRate", "Decay"]

Decay = Literal["constant", "cosine", "linear"]


@dataclass(frozen=True)
class LearningRate:
    """``peak * min(1, (step + 1) / warmup)``, times a decay from 1 (end of warm-up) to ``final`` (last step)."""

    peak: float
    warmup: int
    total: int
    decay: Decay = "constant"
    final: float = 0.0

    def __call__(self, step: int) -> float:
        """The learning rate of step ``step`` (counted from 0)."""
        lr = self.peak * min(1.0, (step + 1) / self.warmup) if self.warmup else self.peak
        if self.decay == "constant" or step < self.warmup:
            return lr
        span = max(1, self.total - 1 - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if self.decay == "cosine" else 1 - progress
        return lr * (self.final + (1 - self.final) * shape)
