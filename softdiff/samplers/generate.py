"""``generate``: prior draw + sampler, in batches, with per-sample seeds and a progress bar."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from ..conditioning import Cond, class_labels, cond_length, cond_rows
from ..corrupt import CorruptionProcess
from ..progress import LoggedProgress
from ..resources import check_memory
from .class_prior import ClassPrior
from .core import DenoiserFn, Sampler, get
from .grids import time_grid
from .noise import SeededNoise
from .prior import Prior

__all__ = ["generate", "Trajectory", "draw_prior", "check_sample_memory"]


@dataclass(frozen=True)
class Trajectory:
    """The sampler's path for some samples: ``x[:, i]`` is ``x`` at ``ts[i]``, ``x0_hat[:, i]`` its estimate."""

    ts: Tensor
    x: Tensor
    x0_hat: Tensor


def draw_prior(
    prior: Prior | ClassPrior,
    noise: SeededNoise,
    device: torch.device | str,
    dtype: torch.dtype,
    labels: Tensor | None = None,
) -> Tensor:
    """``x_1`` for the samples of ``noise``: the first draws of each sample's own stream.

    With a :class:`ClassPrior` and ``labels``, each sample comes from its class's prior.
    """
    if isinstance(prior, ClassPrior) and labels is not None:
        return _draw_by_class(prior, noise, device, dtype, labels)
    z = noise.randn((len(noise), prior.latent_dim), dtype=dtype).to(device)
    eta = noise.randn((len(noise), *prior.shape), dtype=dtype).to(device)
    return prior.sample_from(z, eta)


def _draw_by_class(
    prior: ClassPrior, noise: SeededNoise, device: torch.device | str, dtype: torch.dtype, labels: Tensor
) -> Tensor:
    """Rows of each class from that class's prior, each from its own stream (as if drawn alone)."""
    labels = labels.cpu()
    x = torch.empty(len(noise), *prior.shape, dtype=dtype, device=device)
    for label in labels.unique().tolist():
        rows = (labels == label).nonzero().flatten().tolist()
        x[rows] = draw_prior(prior.prior_of(int(label)), noise.subset(rows), device, dtype)
    return x


def _progress(enabled: bool) -> LoggedProgress:
    return LoggedProgress(
        TextColumn("[bold]sampling[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def check_sample_memory(n: int, shape: tuple[int, ...], dtype: torch.dtype = torch.float32, path: int = 0) -> None:
    """Refuse ``n`` images (plus ``path`` trajectory frames, twice) that cannot fit in memory, before sampling."""
    per_image = math.prod(shape) * torch.finfo(dtype).bits // 8
    check_memory(per_image * (n + 2 * path), f"{n:,} images of shape {tuple(shape)}")


def generate(
    denoiser: DenoiserFn,
    process: CorruptionProcess,
    prior: Prior,
    n: int,
    *,
    sampler: str | Sampler = "momentum",
    steps: int = 50,
    grid: str | Tensor | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    trajectory: bool | int = False,
    offset: int = 0,
    cond: Cond = None,
) -> Tensor | tuple[Tensor, Trajectory]:
    """Draw ``n`` images ``(n, C, H, W)`` (returned on the CPU) from ``prior`` at t = 1.

    Sample ``i`` depends only on ``(seed, i)``: its prior draw and every step noise come
    from its own generator, so neither ``batch_size`` nor ``n`` changes it. The grid is
    ``uniform_grid(steps)`` unless ``grid`` (starting at 1) is given. The denoiser must
    already live on ``device``. ``grid`` may also name one (``time_grid``: ``"uniform"``,
    ``"log-noise"``, ``"edm"``, ``"levels"``, optionally with a stop such as ``"edm:levels"``)
    of ``steps`` steps. Memory is O(batch_size) unless ``trajectory`` is set:
    ``True`` keeps the path of every sample, an integer ``k`` that of the first ``k``;
    the result is then ``(images, Trajectory)``. ``offset`` shifts the sample indices: row
    ``j`` is sample ``offset + j`` of the seeded run (how ranks share one run between them).
    ``cond`` conditions the sampler (:mod:`softdiff.conditioning`): one row per image (a label
    tensor of length ``n``, or a dict of such tensors), split by batch and otherwise passed
    untouched; the sampler is called without it when it is None.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of samples, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative sample index, got {offset!r}")
    count = cond_length(cond)
    if cond is not None and count != n:
        raise ValueError(f"cond must hold one row per image ({n}), got {count}")
    run_sampler = get(sampler) if isinstance(sampler, str) else sampler
    ts = time_grid("uniform" if grid is None else grid, process, steps)
    if float(ts[0]) != 1.0:
        raise ValueError(f"generate draws from the prior at t = 1, so the grid must start at 1, not {float(ts[0]):.4g}")
    keep = n if trajectory is True else max(0, min(n, int(trajectory)))
    check_sample_memory(n, prior.shape, dtype, keep * (len(ts) - 1))
    images = torch.empty(n, *prior.shape, dtype=dtype)
    path_x = torch.empty(keep, len(ts) - 1, *prior.shape, dtype=dtype)
    path_x0 = torch.empty_like(path_x)

    with _progress(progress) as bar:
        task = bar.add_task(f"{n} images", total=-(-n // batch_size) * (len(ts) - 1))
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            noise = SeededNoise(seed, range(offset + start, offset + stop))
            rows = cond_rows(cond, slice(start, stop))
            x = draw_prior(prior, noise, device, dtype, class_labels(rows))
            record = _recorder(path_x, path_x0, start, stop, keep)

            def on_step(info: dict[str, Any], record: Callable[[dict[str, Any]], None] | None = record) -> None:
                if record is not None:
                    record(info)
                bar.advance(task)

            extra = {} if cond is None else {"cond": rows}
            images[start:stop] = run_sampler(denoiser, process, x, ts, generator=noise, callback=on_step, **extra).cpu()
    if not keep:
        return images
    return images, Trajectory(ts, path_x, path_x0)


def _recorder(
    path_x: Tensor, path_x0: Tensor, start: int, stop: int, keep: int
) -> Callable[[dict[str, Any]], None] | None:
    """A callback storing batch ``start:stop``'s share of the first ``keep`` trajectories (None if none)."""
    rows = min(stop, keep) - start
    if rows <= 0:
        return None

    def record(info: dict[str, Any]) -> None:
        path_x[start : start + rows, info["i"]] = info["x"][:rows].cpu()
        path_x0[start : start + rows, info["i"]] = info["x0_hat"][:rows].cpu()

    return record
