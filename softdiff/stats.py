"""Statistics shared by metrics and tests: the Frechet distance between two Gaussians."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["frechet_distance"]


def _psd_sqrt(cov: Tensor) -> Tensor:
    """Symmetric square root of a covariance; tiny negative eigenvalues (round-off) are clipped."""
    vals, vecs = torch.linalg.eigh((cov + cov.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> float:
    """``|m1 - m2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2)`` in float64.

    The symmetric form keeps every matrix square root real, unlike ``sqrtm(C1 @ C2)``.
    """
    m1, m2, c1, c2 = (t.detach().to(torch.float64) for t in (mean1, mean2, cov1, cov2))
    if m1.shape != m2.shape or c1.shape != c2.shape or c1.shape != (m1.numel(), m1.numel()):
        shapes = f"means {tuple(m1.shape)}, {tuple(m2.shape)}; covariances {tuple(c1.shape)}, {tuple(c2.shape)}"
        raise ValueError(f"mismatched Gaussians: {shapes}")
    s1 = _psd_sqrt(c1)
    cross = torch.linalg.eigvalsh(s1 @ c2 @ s1).clamp_min(0).sqrt().sum()
    return float((m1 - m2).square().sum() + c1.trace() + c2.trace() - 2 * cross)
