"""Batch order and sharding: which examples, noises and times each step gives each rank.

**Global batch.** ``train.batch_size`` is the batch of *one* process; a job of ``W``
processes takes ``batch_size x W`` images per optimizer step (DDP averages the ranks'
gradients, so the step is that of the mean loss over the global batch).

**Data order.** Step ``k``'s global batch is exactly what a single process with batch
``batch_size x W`` draws: ``BatchOrder(N, batch_size x W, seed).indices(k)``, a slice of
epoch ``e``'s permutation seeded by ``(seed, e)``. Rank ``r`` takes positions
``r, r + W, r + 2W, ...`` of it. That is ``torch.utils.data.DistributedSampler``'s
scheme (a shared per-epoch permutation, "set_epoch" reshuffling, rank ``r`` taking every
``W``-th index, the tail dropped) with two differences that matter here: the permutation
comes from :func:`softdiff.seeding.derive_seed`, like the rest of the trainer, and the epoch follows from
the step alone, so a resumed run needs no sampler state. The data sets are in-memory
uint8 tensors, so a DataLoader with workers would only add processes: gathering a batch is
one index and one conversion (done on the GPU after a pinned, asynchronous copy).

**Noise and times.** Every rank draws the *global* batch's ``t`` and ``eta`` from the
step generator seeded by ``(seed, step)`` and keeps its own positions, so the noise of
an example is a function of ``(seed, step, global position)``: the ranks get different
noise, and a ``W``-rank run is (to float rounding) the same computation as one process
with the global batch. For ``W = 1`` the draws are exactly the trainer's previous ones.
Horizontal flips (``data.hflip``) are drawn the same way, one per position of the global
batch from a generator seeded by ``(seed, step)``, and applied on the device after the copy.
The price is drawing ``W`` times the noise a rank uses, a few microseconds per step on a
GPU, which buys a testable equivalence. Dropout masks (``model.dropout > 0``) come from
the global RNG, seeded per ``(seed, step, rank)``; they are the one thing that differs
from the single-process run.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import ImageData
from ..data.datasets import to_float
from ..distributed import DistContext
from ..score.objectives import TSampler
from ..seeding import derive_seed
from ..tensors import upload

__all__ = ["BatchOrder", "ShardedBatches", "global_draws", "check_world"]


class BatchOrder:
    """Shuffled epochs without replacement; epoch ``e`` is a permutation seeded by ``(seed, e)``."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        if size < batch_size:
            raise ValueError(f"the data set has {size} images, fewer than the batch size {batch_size}")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.per_epoch = size // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> Tensor:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "data", epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.size, generator=g)
        return self._perm[k * self.batch_size : (k + 1) * self.batch_size]


def _own(x: Tensor, ctx: DistContext) -> Tensor:
    """This rank's positions ``rank, rank + W, ...`` of a global batch."""
    return x if ctx.world == 1 else x[ctx.rank :: ctx.world].contiguous()


class ShardedBatches:
    """Step ``k``'s share of the global batch for this rank, on the device, in [-1, 1]."""

    def __init__(
        self, data: ImageData, order: BatchOrder, ctx: DistContext, channels_last: bool = False, hflip: bool = False
    ) -> None:
        self.data, self.order, self.ctx, self.channels_last, self.hflip = data, order, ctx, channels_last, hflip
        self.pin = ctx.device.type == "cuda"

    def __call__(self, step: int) -> Tensor:
        index = _own(self.order.indices(step), self.ctx)
        if self.pin:  # uint8 over the bus (4x less than float), converted on the GPU
            x0 = to_float(upload(self.data.images[index], self.ctx.device))
        else:
            x0 = self.data.batch(index).to(self.ctx.device)
        if self.hflip:
            x0 = torch.where(upload(self.flips(step), x0.device)[:, None, None, None], x0.flip(-1), x0)
        return x0.contiguous(memory_format=torch.channels_last) if self.channels_last else x0

    def flips(self, step: int) -> Tensor:
        """Which of this rank's images step ``k`` flips: one draw per position of the global batch, seeded by step."""
        g = torch.Generator().manual_seed(derive_seed(self.order.seed, "hflip", step))
        return _own(torch.rand(self.order.batch_size, generator=g) < 0.5, self.ctx)

    def labels(self, step: int, generator: torch.Generator, dropout: float) -> tuple[Tensor, Tensor]:
        """Step ``k``'s labels for this rank (CPU) and which to drop: a draw per position of the global batch."""
        if self.data.labels is None:
            raise ValueError("class-conditional training needs a data set with labels")
        order = self.order.indices(step)
        drop = torch.rand(len(order), generator=generator) < dropout
        return _own(self.data.labels[order], self.ctx), _own(drop, self.ctx)


def global_draws(
    t_sampler: TSampler, x0: Tensor, generator: torch.Generator, ctx: DistContext
) -> tuple[Tensor, Tensor]:
    """``(t, eta)`` for this rank's ``x0``: its positions of the global batch's draws (see the module doc)."""
    batch = x0.shape[0] * ctx.world
    t = t_sampler(batch, generator, x0.device)
    where = generator.device
    noise = torch.randn((batch, *x0.shape[1:]), generator=generator, device=where, dtype=x0.dtype)
    return _own(t, ctx).to(x0.device), _own(noise, ctx).to(x0.device)


def check_world(stored: object, ctx: DistContext) -> None:
    """Refuse to resume with another number of processes: the global batch and data order depend on it."""
    world = int(stored) if isinstance(stored, int) else 1  # checkpoints from before this field: one process
    if world != ctx.world:
        raise ValueError(
            f"this run was trained by {world} process(es) (global batch = batch_size x {world}) but is resumed "
            f"by {ctx.world}; resume it with the same number (softdiff train --nproc {world} --resume ..., "
            f"or torchrun with {world} processes in total)"
        )
