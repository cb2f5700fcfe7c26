"""Gaussian statistics shared across the library: sample moments and the Fréchet (W2) distance."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["moments", "sqrtm_psd", "frechet_distance"]


def moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of samples ``x`` (``(N, ...)``, flattened), float64."""
    flat = x.detach().reshape(x.shape[0], -1).to(torch.float64)
    if flat.shape[0] < 2:
        raise ValueError(f"moments need at least 2 samples, got {flat.shape[0]}")
    mean = flat.mean(0)
    centred = flat - mean
    return mean, centred.T @ centred / (flat.shape[0] - 1)


def sqrtm_psd(matrix: Tensor) -> Tensor:
    """Symmetric square root of a positive semi-definite matrix (eigh; tiny negative eigenvalues clipped)."""
    values, vectors = torch.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> float:
    """``|m1 - m2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``: squared 2-Wasserstein between Gaussians.

    The symmetric form keeps every square root real (unlike ``sqrtm(S1 @ S2)``), and the trace
    of the inner root is the sum of square roots of its eigenvalues, so one ``eigh`` suffices.
    """
    m1, m2, s1, s2 = (t.detach().to(torch.float64) for t in (mean1, mean2, cov1, cov2))
    m1, m2 = m1.reshape(-1), m2.reshape(-1)
    d = m1.numel()
    if m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"frechet_distance needs means (d,) and covariances (d, d) of one size; got {d} vs "
            f"{tuple(m2.shape)}, {tuple(s1.shape)}, {tuple(s2.shape)}"
        )
    root1 = sqrtm_psd(s1)
    cross = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0).sqrt().sum()
    value = (m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * cross
    return float(value.clamp_min(0))
