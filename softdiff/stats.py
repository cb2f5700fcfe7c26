"""Gaussian statistics in float64: PSD square roots and the Fréchet (2-Wasserstein) distance.

The Fréchet distance between ``N(m1, S1)`` and ``N(m2, S2)`` is the squared 2-Wasserstein
distance ``|m1 - m2|^2 + Tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})`` (FID is this on
Inception features). Every square root comes from a symmetric eigendecomposition
(``torch.linalg.eigh``) with tiny negative eigenvalues from round-off clamped to zero, which
is both faster and more stable than a general matrix square root.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sqrtm_psd", "eigh_psd", "trace_sqrt_product", "frechet_distance", "frechet_distance_eig"]

Eig = tuple[Tensor, Tensor]


def _symmetric64(mat: Tensor, name: str) -> Tensor:
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(mat.shape)}")
    mat = mat.to(torch.float64)
    return (mat + mat.T) / 2


def eigh_psd(cov: Tensor) -> Eig:
    """``(eigenvalues, eigenvectors)`` of a symmetric PSD matrix in float64, eigenvalues clamped at 0."""
    evals, evecs = torch.linalg.eigh(_symmetric64(cov, "cov"))
    return evals.clamp_min(0), evecs


def sqrtm_psd(cov: Tensor) -> Tensor:
    """The symmetric PSD square root ``S^{1/2}`` (float64) of a symmetric PSD matrix."""
    evals, evecs = eigh_psd(cov)
    return (evecs * evals.sqrt()) @ evecs.T


def trace_sqrt_product(eig1: Eig, eig2: Eig) -> Tensor:
    """``Tr (S1^{1/2} S2 S1^{1/2})^{1/2}`` from the eigendecompositions of ``S1`` and ``S2``.

    With ``S = V diag(l) V^T``, the matrix ``M = diag(l1)^{1/2} V1^T V2 diag(l2)^{1/2}``
    satisfies ``M M^T ~ S1^{1/2} S2 S1^{1/2}`` (similar matrices), so the trace is the sum of
    the square roots of the eigenvalues of the symmetric PSD ``M M^T``.
    """
    (l1, v1), (l2, v2) = eig1, eig2
    m = (l1.sqrt()[:, None] * (v1.T @ v2)) * l2.sqrt()[None, :]
    gram = m @ m.T
    return torch.linalg.eigvalsh((gram + gram.T) / 2).clamp_min(0).sqrt().sum()


def frechet_distance_eig(mean1: Tensor, eig1: Eig, mean2: Tensor, eig2: Eig) -> float:
    """Fréchet distance when both covariances are already eigendecomposed (reuse them across pairs)."""
    diff = mean1.to(torch.float64) - mean2.to(torch.float64)
    traces = eig1[0].sum() + eig2[0].sum()
    return float((diff @ diff + traces - 2 * trace_sqrt_product(eig1, eig2)).clamp_min(0))


def frechet_distance(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> float:
    """``|m1 - m2|^2 + Tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})`` in float64 (squared W2)."""
    if mean1.ndim != 1 or mean1.shape != mean2.shape:
        raise ValueError(f"means must be vectors of one shape, got {tuple(mean1.shape)} and {tuple(mean2.shape)}")
    if cov1.shape != (mean1.numel(), mean1.numel()) or cov2.shape != cov1.shape:
        raise ValueError(
            f"covariances must be {mean1.numel()}x{mean1.numel()}, got {tuple(cov1.shape)} and {tuple(cov2.shape)}"
        )
    return frechet_distance_eig(mean1, eigh_psd(cov1), mean2, eigh_psd(cov2))
