"""Real-data features, computed once per (data set, feature extractor) and cached on disk.

The cache key is the SHA-256 of the data bytes and of the extractor's description and
weights, so a changed data set or retrained feature net never reuses stale statistics.
Features (not only mean/covariance) are cached because KID needs them one by one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import Tensor

from ..data import ImageData
from ..imageio import atomic_write_bytes
from ..progress import LoggedProgress
from ..resources import cache_root
from .extractors import FeatureExtractor
from .features import data_digest

__all__ = ["default_cache_dir", "extract_features", "real_features"]


def default_cache_dir() -> Path:
    """``$SOFTDIFF_CACHE/stats`` or ``~/.cache/softdiff/stats``."""
    return cache_root() / "stats"


def _images(data: ImageData | Tensor) -> Tensor:
    return data.images if isinstance(data, ImageData) else data


@torch.no_grad()
def extract_features(
    data: ImageData | Tensor,
    extractor: FeatureExtractor,
    *,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    progress: bool = False,
    label: str = "features",
) -> Tensor:
    """Features ``(N, num_features)`` on the CPU, in the extractor's output dtype."""
    images = _images(data)
    extractor = extractor.to(device).eval()
    out = []
    with LoggedProgress(disable=not progress, transient=True) as bar:
        task = bar.add_task(label, total=len(images))
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            out.append(extractor(batch).cpu())
            bar.update(task, advance=len(batch))
    feats = torch.cat(out) if out else torch.empty(0, extractor.num_features)
    if feats.shape[1:] != (extractor.num_features,):
        raise RuntimeError(f"{extractor.description} gave features of shape {tuple(feats.shape)}")
    return feats


def _identity(data: ImageData | Tensor, extractor: FeatureExtractor) -> dict[str, str]:
    """What the cached features depend on: the exact data bytes and the exact feature network."""
    return {
        "data": data.name if isinstance(data, ImageData) else "tensor",
        "n": str(len(_images(data))),
        "data_sha256": data_digest(_images(data)),
        "features": extractor.description,
        "extractor_sha256": extractor.fingerprint(),
    }


def _path(identity: dict[str, str], cache_dir: str | Path | None) -> Path:
    key = f"{identity['data']}-{identity['n']}-{identity['data_sha256'][:16]}-{identity['extractor_sha256'][:16]}"
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{key}.safetensors"


def _load_cached(path: Path, identity: dict[str, str], num_features: int) -> Tensor | None:
    """The cached features, or None (with a warning) when the file is unreadable or not for this input."""
    try:
        with safe_open(path, framework="pt") as f:
            stored = f.metadata() or {}
            feats = f.get_tensor("features")
    except (OSError, SafetensorError, KeyError) as err:
        warnings.warn(f"ignoring unreadable feature cache {path} ({err}); recomputing", stacklevel=3)
        return None
    if stored != identity or tuple(feats.shape) != (int(identity["n"]), num_features):
        warnings.warn(f"ignoring feature cache {path}: written for other data or features; recomputing", stacklevel=3)
        return None
    return feats


def real_features(
    data: ImageData | Tensor,
    extractor: FeatureExtractor,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> Tensor:
    """Features of the real images, read from the cache when present, else computed and cached."""

    def compute() -> Tensor:
        return extract_features(
            data, extractor, batch_size=batch_size, device=device, progress=progress, label="real features"
        )

    if not use_cache:
        return compute()
    identity = _identity(data, extractor)
    path = _path(identity, cache_dir)
    if path.is_file():
        cached = _load_cached(path, identity, extractor.num_features)
        if cached is not None:
            return cached
    feats = compute()
    try:
        atomic_write_bytes(path, save({"features": feats.contiguous()}, metadata=identity))
    except OSError as err:  # a read-only or full cache costs a recomputation next time, never the evaluation
        message = f"cannot write the feature cache {path} ({err.strerror or err}); continuing without it"
        warnings.warn(message, stacklevel=2)
    return feats
