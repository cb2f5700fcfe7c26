"""``generate_sharded``: one seeded sampling run split between the ranks of a torchrun job.

Rank ``r`` draws the contiguous block :func:`~softdiff.distributed.shard_range` of the
sample indices; since sample ``i`` depends only on ``(seed, i)`` (see :mod:`.noise`), the
images gathered on rank 0 are exactly those one process would draw, in the same order.
"""

from __future__ import annotations

from typing import Any

import torch

from ..conditioning import cond_rows
from ..distributed import DistContext, shard_range
from .generate import Trajectory, generate

__all__ = ["generate_sharded"]


def generate_sharded(
    ctx: DistContext, denoiser: Any, process: Any, prior: Any, n: int, *, trajectory: bool | int = False, **kwargs: Any
) -> torch.Tensor | tuple[torch.Tensor, Trajectory] | None:
    """:func:`generate` over all ranks: the full result on rank 0, ``None`` on the others.

    ``trajectory`` keeps the paths of the first samples as in :func:`generate` (whichever
    ranks draw them). Progress is shown on rank 0 only. Results travel to rank 0 as CPU
    tensors through ``gather_object``.
    """
    if not ctx.active:
        return generate(denoiser, process, prior, n, trajectory=trajectory, **kwargs)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of samples, got {n!r}")
    block = shard_range(n, ctx.rank, ctx.world)
    keep = n if trajectory is True else max(0, min(n, int(trajectory)))
    mine = max(0, min(block.stop, keep) - block.start)
    kwargs["progress"] = kwargs.get("progress", False) and ctx.is_main
    if kwargs.get("cond") is not None:  # one row per image of the run: each rank takes its block's rows
        kwargs["cond"] = cond_rows(kwargs["cond"], slice(block.start, block.stop))
    part: Any = None
    if len(block):
        out = generate(denoiser, process, prior, len(block), trajectory=mine, offset=block.start, **kwargs)
        part = out if mine else (out, None)
    parts = ctx.gather(part)
    if parts is None:
        return None
    pieces = [p for p in parts if p is not None]
    images = torch.cat([images for images, _ in pieces])
    if not keep:
        return images
    paths = [path for _, path in pieces if path is not None]
    x = torch.cat([path.x for path in paths])
    x0_hat = torch.cat([path.x0_hat for path in paths])
    return images, Trajectory(paths[0].ts, x, x0_hat)
