"""Mean and covariance of clean images: all that the level Gaussians need, since ``C_u`` is linear."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..stats import eigh_psd

__all__ = ["DataMoments", "pick_moments"]


@dataclass(frozen=True)
class DataMoments:
    """Mean and covariance factor of clean images: ``Cov = F^T F`` with ``F`` as rows of images.

    Only these enter the level Gaussians, since ``C_u`` is linear. ``factor`` has at most
    ``min(n - 1, D)`` rows, so applying ``C_u`` to it is as cheap as possible.
    """

    mean: Tensor  # (C, H, W), float64
    factor: Tensor  # (r, C, H, W), float64
    samples: int | None = None

    @classmethod
    def from_images(cls, images: Tensor) -> DataMoments:
        """Sample mean and (unbiased) covariance factor of ``(n, C, H, W)`` images."""
        if images.ndim != 4 or images.shape[0] < 2:
            raise ValueError(f"need at least 2 images of shape (n, C, H, W), got {tuple(images.shape)}")
        x = images.to(torch.float64)
        n, shape = x.shape[0], x.shape[1:]
        centred = (x - x.mean(0)).flatten(1) / math.sqrt(n - 1)
        if centred.shape[0] > centred.shape[1]:  # more images than pixels: factor the D x D covariance
            evals, evecs = eigh_psd(centred.T @ centred)
            centred = evals.sqrt()[:, None] * evecs.T
        return cls(x.mean(0), centred.reshape(-1, *shape), n)

    @classmethod
    def from_gaussian(cls, mean: Tensor, cov: Tensor, shape: tuple[int, int, int]) -> DataMoments:
        """Exact moments of ``N(mean, cov)`` (e.g. :class:`softdiff.score.GaussianData`)."""
        evals, evecs = eigh_psd(cov)
        factor = evals.sqrt()[:, None] * evecs.T
        return cls(mean.to(torch.float64).reshape(shape), factor.reshape(-1, *shape), None)

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.mean.shape
        return c, h, w


def pick_moments(images: Tensor | DataMoments, samples: int | None, seed: int) -> DataMoments:
    """``images`` as moments: ``samples`` of them picked with ``seed`` (all when None), or moments as given."""
    if isinstance(images, DataMoments):
        return images
    if samples is not None and images.shape[0] > samples:
        pick = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:samples]
        images = images[pick]
    return DataMoments.from_images(images)
