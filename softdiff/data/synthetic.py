"""A tiny deterministic data set of shapes for tests and smoke runs (no files needed)."""

from __future__ import annotations

import torch

from .datasets import ImageData, register_dataset

__all__ = ["synthetic_shapes"]


def synthetic_shapes(n: int = 512, size: int = 16, channels: int = 1, seed: int = 0) -> ImageData:
    """Bright squares (label 0) and discs (label 1) of random size and position on a dark background."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.randint(size // 4, 3 * size // 4, (n, 2), generator=g)
    radius = torch.randint(max(1, size // 8), max(2, size // 3), (n,), generator=g)
    disc = torch.rand(n, generator=g) < 0.5
    dy = (ys[None] - centre[:, 0, None, None]).abs()
    dx = (xs[None] - centre[:, 1, None, None]).abs()
    r = radius[:, None, None]
    inside = torch.where(disc[:, None, None], dy**2 + dx**2 <= r**2, (dy <= r) & (dx <= r))
    shade = torch.randint(160, 256, (n, channels, 1, 1), generator=g)
    images = (inside[:, None] * shade).to(torch.uint8).expand(n, channels, size, size).contiguous()
    return ImageData(images, disc.long(), "synthetic", ("square", "disc"))


register_dataset(
    "synthetic", lambda split, data_dir: synthetic_shapes(seed=0 if split == "train" else 1), generated=True
)
