"""Where a sampler's randomness comes from: a ``torch.Generator`` or per-sample seeds.

With :class:`SeededNoise` every sample ``i`` of a run owns a generator seeded by
``(seed, i)`` (:func:`softdiff.seeding.sample_seed`), so its prior draw and all of its
step noises depend on ``(seed, i)`` alone: the same image comes out whatever the batch
size or the position in the batch.
Noise is drawn on the CPU and then moved, so seeded samples also agree across devices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..seeding import sample_seed

__all__ = ["SeededNoise", "NoiseSource", "sample_seed", "randn"]


class SeededNoise:
    """One CPU generator per sample: ``randn((B, ...))`` draws row ``j`` from sample ``j``'s own stream."""

    def __init__(self, seed: int, indices: Sequence[int] | range) -> None:
        indices = list(indices)
        if not indices:
            raise ValueError("SeededNoise needs at least one sample index")
        self.seed, self.indices = int(seed), indices
        self.generators = [torch.Generator().manual_seed(sample_seed(seed, i)) for i in indices]

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normals of ``shape``, whose first dimension must be the number of samples."""
        shape = tuple(shape)
        if not shape or shape[0] != len(self):
            raise ValueError(f"SeededNoise holds {len(self)} samples but was asked for noise of shape {shape}")
        return torch.stack([torch.randn(shape[1:], generator=g, dtype=dtype) for g in self.generators])

    def subset(self, rows: Sequence[int]) -> SeededNoise:
        """The samples at positions ``rows``, sharing their generators (draws from either advance both)."""
        part = SeededNoise.__new__(SeededNoise)
        part.seed, part.indices = self.seed, [self.indices[r] for r in rows]
        part.generators = [self.generators[r] for r in rows]
        return part

    def __repr__(self) -> str:
        return f"SeededNoise(seed={self.seed}, {len(self)} samples from index {self.indices[0]})"


NoiseSource = torch.Generator | SeededNoise | None


def randn(source: NoiseSource, shape: Sequence[int], *, device: torch.device | str, dtype: torch.dtype) -> Tensor:
    """Standard normals from ``source`` (a generator, per-sample seeds, or the global RNG when None)."""
    if isinstance(source, SeededNoise):
        return source.randn(shape, dtype=dtype).to(device)
    if source is None:
        return torch.randn(tuple(shape), device=device, dtype=dtype)
    if isinstance(source, torch.Generator):
        return torch.randn(tuple(shape), generator=source, device=source.device, dtype=dtype).to(device)
    if callable(getattr(source, "randn", None)):  # any object drawing like SeededNoise (e.g. scripted probes)
        return source.randn(shape, dtype=dtype).to(device)
    raise TypeError(
        f"noise source must be a torch.Generator, a SeededNoise, an object with randn(shape, dtype) or None, "
        f"got {type(source).__name__}"
    )
