"""Precision, recall, density and coverage on k-nearest-neighbour manifolds of features.

FID mixes two failures into one number: samples off the data (low fidelity) and data the
samples miss (low diversity). The paper's diversity question (RQ4: does the momentum sampler
keep the variety that the naive one loses?) needs them apart:

* **precision / recall** (Kynkäänniemi et al., 2019): each set's manifold is the union of
  balls around its points, with the distance to the ``k``-th nearest neighbour in the same
  set as radius. Precision is the share of samples inside the real manifold, recall the
  share of real points inside the samples' manifold.
* **density / coverage** (Naeem et al., 2020): density counts, per sample, the real balls
  that hold it (divided by ``k``; 1 on average for matching sets, and robust to outliers in
  the real set); coverage is the share of real balls that hold at least one sample.

Real and generated sets are compared at equal size (the original protocol): the real
features are a seeded random subset of as many points as there are samples. Distances are
computed in float64 chunks, so memory stays at ``chunk x n`` whatever ``n``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["prdc", "kth_neighbour_radii", "PRDC_K", "PRDC_KEYS"]

_CHUNK = 1024
PRDC_K = 5  # the neighbour count both papers recommend
PRDC_KEYS = ("precision", "recall", "density", "coverage", "prdc_k", "prdc_n_real")


def _distances(a: Tensor, b: Tensor) -> Tensor:
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def kth_neighbour_radii(x: Tensor, k: int) -> Tensor:
    """Distance of each point to its ``k``-th nearest other point of ``x`` (the point itself excluded)."""
    if not 1 <= k < len(x):
        raise ValueError(f"k must lie in [1, {len(x) - 1}] for {len(x)} points, got {k}")
    out = torch.empty(len(x), dtype=torch.float64)
    for start in range(0, len(x), _CHUNK):
        d = _distances(x[start : start + _CHUNK], x)
        out[start : start + len(d)] = d.kthvalue(k + 1, dim=1).values  # the 1st is the point itself (0)
    return out


def _inside(points: Tensor, centres: Tensor, radii: Tensor) -> Tensor:
    """``(len(points), len(centres))`` booleans: point i lies in the ball of centre j."""
    rows = [_distances(points[s : s + _CHUNK], centres) <= radii[None] for s in range(0, len(points), _CHUNK)]
    return torch.cat(rows)


def prdc(real: Tensor, fake: Tensor, k: int = PRDC_K, seed: int = 0) -> dict[str, float | int]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` features ``(N, F)``.

    ``real`` is subsampled (seeded) to ``len(fake)`` points when it is larger. ``k = 5`` is
    the value both papers recommend.
    """
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need two (N, F) feature sets of the same F, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if len(fake) <= k or len(real) <= k:
        raise ValueError(f"precision/recall with k = {k} need more than {k} points per set")
    real, fake = real.double().cpu(), fake.double().cpu()
    if len(real) > len(fake):
        pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[: len(fake)]
        real = real[pick.sort().values]
    real_r, fake_r = kth_neighbour_radii(real, k), kth_neighbour_radii(fake, k)
    fake_in_real = _inside(fake, real, real_r)  # (n_fake, n_real)
    real_in_fake = _inside(real, fake, fake_r)  # (n_real, n_fake)
    return {
        "precision": float(fake_in_real.any(1).double().mean()),
        "recall": float(real_in_fake.any(1).double().mean()),
        "density": float(fake_in_real.sum().double() / (k * len(fake))),
        "coverage": float(fake_in_real.any(0).double().mean()),
        "prdc_k": k,
        "prdc_n_real": len(real),
    }
