"""Real-data features, computed once per (data set, feature extractor) and cached on disk.

The cache key is the SHA-256 of the data bytes and of the extractor's description and
weights, so a changed data set or retrained feature net never reuses stale statistics.
Features (not only mean/covariance) are cached because KID needs them one by one.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from rich.progress import Progress
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import Tensor

from ..data import ImageData
from ..imageio import atomic_write_bytes
from .extractors import FeatureExtractor
from .features import data_digest

__all__ = ["default_cache_dir", "extract_features", "real_features", "cache_path"]


def default_cache_dir() -> Path:
    """``$SOFTDIFF_CACHE/stats`` or ``~/.cache/softdiff/stats``."""
    root = os.environ.get("SOFTDIFF_CACHE") or Path.home() / ".cache" / "softdiff"
    return Path(root) / "stats"


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
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(label, total=len(images))
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            out.append(extractor(batch).cpu())
            bar.update(task, advance=len(batch))
    feats = torch.cat(out) if out else torch.empty(0, extractor.num_features)
    if feats.shape[1:] != (extractor.num_features,):
        raise RuntimeError(f"{extractor.description} gave features of shape {tuple(feats.shape)}")
    return feats


def cache_path(data: ImageData | Tensor, extractor: FeatureExtractor, cache_dir: str | Path | None = None) -> Path:
    """Where the real features of ``data`` under ``extractor`` are (or will be) cached."""
    name = data.name if isinstance(data, ImageData) else "tensor"
    key = f"{name}-{len(_images(data))}-{data_digest(_images(data))[:16]}-{extractor.fingerprint()[:16]}"
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{key}.safetensors"


def _load_cached(path: Path, extractor: FeatureExtractor, n: int) -> Tensor | None:
    try:
        feats = load(path.read_bytes())["features"]
    except (OSError, SafetensorError, KeyError) as err:
        warnings.warn(f"ignoring unreadable feature cache {path} ({err}); recomputing", stacklevel=3)
        return None
    if tuple(feats.shape) != (n, extractor.num_features):
        warnings.warn(f"ignoring feature cache {path} of shape {tuple(feats.shape)}; recomputing", stacklevel=3)
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
    n = len(_images(data))
    path = cache_path(data, extractor, cache_dir) if use_cache else None
    if path is not None and path.is_file():
        cached = _load_cached(path, extractor, n)
        if cached is not None:
            return cached
    feats = extract_features(
        data, extractor, batch_size=batch_size, device=device, progress=progress, label="real features"
    )
    if path is not None:
        meta = {
            "features": extractor.description,
            "data": data.name if isinstance(data, ImageData) else "tensor",
            "data_sha256": data_digest(_images(data)),
            "extractor_sha256": extractor.fingerprint(),
        }
        atomic_write_bytes(path, save({"features": feats.contiguous()}, metadata={"info": json.dumps(meta)}))
    return feats
