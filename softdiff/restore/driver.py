"""``restore``: ``K`` posterior samples per image and their mean, in batches, seeded per image.

Sample ``j`` of image ``i`` draws all of its noise from the stream ``(seed, i * STRIDE + j)``
and the measurement noise of image ``i`` (when :func:`degrade` makes ``y``) comes from
``(seed, -1 - i)``: results depend neither on the batch size nor on how many images or
samples a run has. ``i`` is the image's id: its position plus ``offset``, or ``ids[position]``
(a data set index, so a subset restores each image exactly as the whole set does).

A restoration with a non-finite value is an error, never a result.

``cond`` (one row per observed image, :mod:`softdiff.conditioning`) conditions the prior:
each batch's rows, repeated once per sample, are bound to the denoiser every method calls,
so the methods pass it on untouched whatever their own loops look like.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..conditioning import Cond, bind, class_labels, cond_length, cond_rows
from ..corrupt import CorruptionProcess
from ..samplers import ClassPrior, DenoiserFn, Prior, SeededNoise
from .methods import DiffusionModel, Method, Problem
from .operators import Degradation

__all__ = ["Restoration", "restore", "degrade", "STRIDE"]

STRIDE = 2**20  # the most samples one image can have


@dataclass(frozen=True)
class Restoration:
    """``samples`` ``(N, K, C, H, W)`` and their ``mean`` ``(N, C, H, W)``, floats in [-1, 1] scale (CPU)."""

    samples: Tensor
    mean: Tensor
    method: str
    nfe: int
    seconds: float

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(len(self.mean), 1)


class _Ticks:
    """A sampler callback that reports a batch's images in equal shares per step, then the rest."""

    def __init__(self, images: int, steps: int, report: Callable[[float], None] | None) -> None:
        self.images, self.share, self.report, self.credited = images, images / max(steps, 1), report, 0.0

    def __call__(self, info: dict[str, Any]) -> None:
        if self.report is not None and self.credited + self.share <= self.images:
            self.credited += self.share
            self.report(self.share)

    def finish(self) -> None:
        if self.report is not None and self.images > self.credited:
            self.report(self.images - self.credited)


def _check_batch(images: Tensor, what: str) -> None:
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"{what} must be a float batch (N, C, H, W), got {images.dtype} {tuple(images.shape)}")


def _image_ids(n: int, offset: int, ids: Sequence[int] | None) -> list[int]:
    if ids is None:
        return [offset + i for i in range(n)]
    ids = [int(i) for i in ids]
    if len(ids) != n or len(set(ids)) != n or min(ids, default=0) < 0:
        raise ValueError(f"ids must be {n} distinct image indices >= 0, got {len(ids)} ({len(set(ids))} distinct)")
    return ids


def _check_noise(sigma_y: float) -> None:
    if not (sigma_y >= 0 and math.isfinite(sigma_y)):
        raise ValueError(f"the noise level sigma_y must be a finite number >= 0, got {sigma_y}")


@dataclass(frozen=True)
class _Conditioned:
    """A prior whose denoiser has one batch's ``cond`` bound to it."""

    denoiser: DenoiserFn
    process: CorruptionProcess
    prior: Prior


def _with_cond(model: DiffusionModel | None, cond: Cond, start: int, stop: int, k: int) -> DiffusionModel | None:
    """``model`` for images ``start:stop`` (``k`` sample rows each) with their rows of ``cond`` bound."""
    if model is None or cond is None:
        return model
    rows = cond_rows(cond, slice(start, stop))
    if isinstance(rows, Tensor):
        rows = rows.repeat_interleave(k, dim=0)
    elif rows is not None:
        rows = {
            key: v.repeat_interleave(k, dim=0) if isinstance(v, Tensor) and v.ndim else v for key, v in rows.items()
        }
    prior = model.prior
    labels = class_labels(rows)
    if isinstance(prior, ClassPrior) and labels is not None and len(labels.unique()) == 1:
        prior = prior.prior_of(int(labels[0]))  # one class in the batch: methods drawing x_1 draw from its prior
    return _Conditioned(bind(model.denoiser, rows), model.process, prior)


def _check_finite(out: Tensor, method: Method, A: Degradation, sigma_y: float) -> None:
    bad = ~torch.isfinite(out.flatten(2)).all(dim=2).all(dim=1)
    if bool(bad.any()):
        raise ValueError(
            f"the {method.name} restoration under {A.spec} with sigma_y = {sigma_y:g} produced NaN or infinite "
            f"values in {int(bad.sum())} of {len(out)} images (an unstable data step: with sigma_y = 0 it divides by "
            "the operator's zero or tiny singular values); nothing was written. Give a noise level > 0 or use "
            "another method"
        )


def degrade(
    A: Degradation, x: Tensor, sigma_y: float, *, seed: int = 0, offset: int = 0, ids: Sequence[int] | None = None
) -> Tensor:
    """``y = A x + sigma_y n`` with image ``i``'s noise from its own seeded stream ``(seed, -1 - id_i)``."""
    _check_batch(x, "clean images")
    _check_noise(sigma_y)
    streams = [-1 - i for i in _image_ids(len(x), offset, ids)]
    noise = SeededNoise(seed, streams).randn(x.shape, dtype=x.dtype)
    return A(x) + sigma_y * noise.to(x.device)


def restore(
    model: DiffusionModel | None,
    method: Method,
    A: Degradation,
    y: Tensor,
    sigma_y: float,
    *,
    samples: int = 1,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    offset: int = 0,
    ids: Sequence[int] | None = None,
    on_progress: Callable[[float], None] | None = None,
    cond: Cond = None,
) -> Restoration:
    """Draw ``samples`` posterior samples for each observation in ``y`` ``(N, C, H, W)``.

    ``batch_size`` counts images (each brings its ``samples`` rows). ``on_progress(images)``
    is told the work done, in images, after every sampler step (a progress bar's tick);
    it adds up to ``N``. ``offset`` shifts the image indices, so a run split in parts gives
    the same samples as one run; ``ids`` gives each image its own index instead.
    A non-finite sample is a ``ValueError`` that names the method and the problem.
    """
    _check_batch(y, "observations")
    _check_noise(sigma_y)
    if not bool(torch.isfinite(y).all()):
        raise ValueError("the observations hold NaN or infinite values")
    image_ids = _image_ids(len(y), offset, ids)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= STRIDE:
        raise ValueError(f"samples must be an integer from 1 to {STRIDE}, got {samples!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    prior = getattr(model, "prior", None)
    if prior is not None and tuple(y.shape[1:]) != tuple(prior.shape):
        raise ValueError(
            f"size mismatch: the observations are {tuple(y.shape[1:])} (C, H, W) but the model restores "
            f"{tuple(prior.shape)} images"
        )
    if model is not None:
        method.check(model, A, sigma_y)
    if cond is not None and cond_length(cond) != len(y):
        raise ValueError(f"cond must hold one row per observed image ({len(y)}), got {cond_length(cond)}")

    n, k = len(y), samples
    out = torch.empty(n, k, *y.shape[1:], dtype=y.dtype)
    start_time = time.perf_counter()
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        rows = [image_ids[i] * STRIDE + j for i in range(start, stop) for j in range(k)]
        noise = SeededNoise(seed, rows)
        yb = y[start:stop].to(device).repeat_interleave(k, dim=0)
        ticks = _Ticks(stop - start, method.steps, on_progress)
        prior_b = _with_cond(model, cond, start, stop, k)
        result = method.sample(prior_b, Problem(A, yb, float(sigma_y)), noise, callback=ticks)  # type: ignore[arg-type]
        out[start:stop] = result.detach().reshape(stop - start, k, *y.shape[1:]).cpu()
        ticks.finish()
    _check_finite(out, method, A, sigma_y)
    seconds = time.perf_counter() - start_time
    return Restoration(out, out.mean(dim=1), method.name, method.nfe(), seconds)
