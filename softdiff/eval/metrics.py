"""FID and KID through torchmetrics, with real-data features cached on disk.

Design: torchmetrics' ``FrechetInceptionDistance`` / ``KernelInceptionDistance`` are built with
``feature=<our extractor>`` (which declares ``num_features``: no dummy 299x299 pass), so
their float64 states, matrix square root and KID subset estimator are the ones used. Features
are extracted once per image by ``extract_features`` (progress bar, batching, device; real
ones come from the cache) and added to the metric states exactly as ``Metric.update`` would
(``add_features``), so FID and KID share one network pass per batch and cached real features
never go through the network again. ``tests/test_metrics.py`` checks this route against
plain ``metric.update(images)`` and against ``softdiff.stats.frechet_distance``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ..data import ImageData
from .cache import extract_features, real_features
from .extractors import FeatureExtractor, get_extractor
from .prdc import PRDC_K, prdc

__all__ = ["build_metrics", "add_features", "evaluate_samples", "fid_kid_from_features"]


def build_metrics(
    extractor: FeatureExtractor, *, kid_subsets: int = 100, kid_subset_size: int = 1000
) -> tuple[FrechetInceptionDistance, KernelInceptionDistance]:
    """torchmetrics FID and KID on ``extractor``; the real states survive ``reset()``."""
    fid = FrechetInceptionDistance(feature=extractor, reset_real_features=False)
    with warnings.catch_warnings():  # "KID keeps all features in memory": that is intended here
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        kid = KernelInceptionDistance(
            feature=extractor, subsets=kid_subsets, subset_size=kid_subset_size, reset_real_features=False
        )
    return fid, kid


def add_features(fid: FrechetInceptionDistance, kid: KernelInceptionDistance, features: Tensor, *, real: bool) -> None:
    """Add precomputed features to both metric states, as their ``update`` does after the network.

    FID keeps float64 sums (mean and X^T X); KID keeps the (float64) features themselves.
    """
    f = features.to(device=fid.device, dtype=torch.float64)
    side = "real" if real else "fake"
    setattr(fid, f"{side}_features_sum", getattr(fid, f"{side}_features_sum") + f.sum(dim=0))
    setattr(fid, f"{side}_features_cov_sum", getattr(fid, f"{side}_features_cov_sum") + f.T @ f)
    setattr(fid, f"{side}_features_num_samples", getattr(fid, f"{side}_features_num_samples") + f.shape[0])
    fid.orig_dtype = torch.float64  # update() records the feature dtype; compute() casts to it
    getattr(kid, f"{side}_features").append(f.to(kid.device))


def fid_kid_from_features(
    extractor: FeatureExtractor,
    real: Tensor,
    fake: Tensor,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """FID, KID (mean, std over subsets; seeded) and precision/recall/density/coverage of two feature sets."""
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID/KID need at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    subset = min(kid_subset_size, len(real), len(fake))
    fid, kid = build_metrics(extractor, kid_subsets=kid_subsets, kid_subset_size=subset)
    add_features(fid, kid, real, real=True)
    add_features(fid, kid, fake, real=False)
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        # the states were filled by add_features, not update(): torchmetrics' warning does not apply
        warnings.filterwarnings("ignore", message=".*called before the ``update`` method.*")
        torch.manual_seed(seed)  # KID draws its subsets with the global generator
        kid_mean, kid_std = kid.compute()
        fid_value = fid.compute()
    return {
        "fid": float(fid_value),
        "kid_mean": float(kid_mean),
        "kid_std": float(kid_std),
        "kid_subsets": kid_subsets,
        "kid_subset_size": subset,
        **(prdc(real, fake, k=PRDC_K, seed=seed) if min(len(real), len(fake)) > PRDC_K else {}),  # k-NN needs > k
    }


def evaluate_samples(
    samples: Tensor,
    real: ImageData | Tensor,
    *,
    features: str | FeatureExtractor = "fashion",
    n: int | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    inception_weights: str | Path | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """FID and KID of ``samples`` (floats in [-1, 1] or uint8) against all of ``real``.

    ``n`` takes the first ``n`` samples (all when None). Real features are cached under
    ``cache_dir`` (default ``~/.cache/softdiff/stats``). The result names the features used:
    ``{"fid", "kid_mean", "kid_std", "features", "n", "n_real", ...}``.
    """
    extractor = (
        features
        if isinstance(features, FeatureExtractor)
        else get_extractor(features, inception_weights=inception_weights)
    )
    if n is not None:
        if n < 2 or n > len(samples):
            raise ValueError(f"n must be between 2 and the {len(samples)} samples given, got {n}")
        samples = samples[:n]
    real_f = real_features(
        real,
        extractor,
        cache_dir=cache_dir,
        use_cache=use_cache,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    fake_f = extract_features(
        samples, extractor, batch_size=batch_size, device=device, progress=progress, label="sample features"
    )
    result = fid_kid_from_features(
        extractor, real_f, fake_f, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed
    )
    return {
        **result,
        "features": extractor.description,
        "n": len(fake_f),
        "n_real": len(real_f),
        "real": real.name if isinstance(real, ImageData) else "tensor",
        "inputs": "uint8 (floats in [-1, 1] clamped and rounded, as saved PNGs)",
    }
