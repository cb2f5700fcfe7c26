"""How good a restoration is: PSNR, SSIM (torchmetrics), data consistency, FID, cost.

PSNR and SSIM are computed per image on the images as saved (uint8, scaled to [0, 1]) and
averaged over images. Consistency ``||A x_hat - y|| / sqrt(D)`` uses the float restorations
and is reported next to ``sigma_y``: a posterior sample should sit near ``sigma_y``
(it is exchangeable with the true image, whose residual is the noise itself); the
posterior mean sits below it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ..data import ImageData
from ..eval import FeatureExtractor, evaluate_samples
from ..imageio import to_uint8
from .driver import Restoration
from .operators import Degradation

__all__ = ["psnr", "ssim", "consistency", "score_restoration"]


def _unit(images: Tensor) -> Tensor:
    return to_uint8(images).double() / 255


def psnr(images: Tensor, clean: Tensor) -> Tensor:
    """Per-image PSNR in dB of [-1, 1] images, as saved (uint8)."""
    return peak_signal_noise_ratio(_unit(images), _unit(clean), data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(images: Tensor, clean: Tensor) -> Tensor:
    """Per-image SSIM (Gaussian window 11, sigma 1.5) of [-1, 1] images, as saved (uint8)."""
    return structural_similarity_index_measure(_unit(images), _unit(clean), data_range=1.0, reduction="none")


def consistency(A: Degradation, images: Tensor, y: Tensor, batch_size: int = 500) -> Tensor:
    """Per-image ``||A x - y|| / sqrt(D)``."""
    out = [
        (A(x.double()) - yb.double()).flatten(1).norm(dim=1) / math.sqrt(x[0].numel())
        for x, yb in zip(images.split(batch_size), y.split(batch_size), strict=True)
    ]
    return torch.cat(out)


def score_restoration(
    result: Restoration,
    A: Degradation,
    y: Tensor,
    clean: Tensor,
    sigma_y: float,
    *,
    real: ImageData | None = None,
    extractor: FeatureExtractor | str | None = None,
    cache_dir: str | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Metrics of the posterior mean and of single samples (sample 0 of each image).

    With ``real`` and ``extractor``, also the FID/KID of the means and of the single samples
    against ``real`` (the test split): at most ``len(clean)`` restorations, so small runs give
    biased (high) FIDs, comparable only at equal ``n``.
    """
    if clean.shape != result.mean.shape:
        raise ValueError(f"clean images {tuple(clean.shape)} do not match the restorations {tuple(result.mean.shape)}")
    single = result.samples[:, 0]

    def stats(images: Tensor) -> dict[str, float]:
        return {
            "psnr": float(psnr(images, clean).mean()),
            "ssim": float(ssim(images, clean).mean()),
            "consistency": float(consistency(A, images, y).mean()),
        }

    metrics: dict[str, Any] = {
        "method": result.method,
        "operator": A.spec,
        "sigma_y": sigma_y,
        "n": len(clean),
        "samples_per_image": result.samples.shape[1],
        "mean": stats(result.mean),
        "sample": stats(single),
        "truth_consistency": float(consistency(A, clean, y).mean()),  # the clean image's residual: the noise
        "nfe": result.nfe,
        "seconds_per_image": result.seconds_per_image,
    }
    if real is not None and extractor is not None and len(clean) >= 2:
        for key, images in (("mean", result.mean), ("sample", single)):
            scored = evaluate_samples(images, real, features=extractor, cache_dir=cache_dir, device=device)
            metrics[key] |= {"fid": scored["fid"], "kid": scored["kid_mean"]}
        metrics["features"] = scored["features"]
        metrics["fid_reference"] = f"{scored['n_real']} images of {scored['real']}"
    return metrics
