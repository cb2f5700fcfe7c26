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

__all__ = [
    "moments",
    "sqrtm_psd",
    "eigh_psd",
    "root_from_eigh",
    "trace_sqrt_product",
    "frechet_distance",
    "frechet_distance_roots",
]


def _symmetric64(mat: Tensor, name: str) -> Tensor:
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(mat.shape)}")
    mat = mat.to(torch.float64)
    return (mat + mat.T) / 2


def moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of samples ``x`` (``(N, ...)``, flattened), float64."""
    flat = x.detach().reshape(x.shape[0], -1).to(torch.float64)
    if flat.shape[0] < 2:
        raise ValueError(f"moments need at least 2 samples, got {flat.shape[0]}")
    mean = flat.mean(0)
    centred = flat - mean
    return mean, centred.T @ centred / (flat.shape[0] - 1)


def eigh_psd(cov: Tensor) -> tuple[Tensor, Tensor]:
    """``(eigenvalues, eigenvectors)`` of a symmetric PSD matrix in float64, eigenvalues clamped at 0."""
    evals, evecs = torch.linalg.eigh(_symmetric64(cov, "cov"))
    return evals.clamp_min(0), evecs


def sqrtm_psd(cov: Tensor) -> Tensor:
    """The symmetric PSD square root ``S^{1/2}`` (float64) of a symmetric PSD matrix."""
    return root_from_eigh(*eigh_psd(cov))


def root_from_eigh(evals: Tensor, evecs: Tensor) -> Tensor:
    """``V diag(sqrt(l)) V^T``: the PSD square root from an eigendecomposition (reuse one ``eigh``)."""
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def trace_sqrt_product(root1: Tensor, root2: Tensor) -> Tensor:
    """``Tr (S1^{1/2} S2 S1^{1/2})^{1/2}`` from the PSD square roots ``R1 = S1^{1/2}``, ``R2 = S2^{1/2}``.

    ``S1^{1/2} S2 S1^{1/2} = (R1 R2)(R1 R2)^T``, so the trace is the sum of the square roots of
    the eigenvalues of that symmetric PSD product (the nuclear norm of ``R1 R2``).
    """
    prod = root1.to(torch.float64) @ root2.to(torch.float64)
    gram = prod @ prod.T
    return torch.linalg.eigvalsh((gram + gram.T) / 2).clamp_min(0).sqrt().sum()


def frechet_distance_roots(mean1: Tensor, root1: Tensor, mean2: Tensor, root2: Tensor) -> float:
    """Fréchet distance from the covariances' PSD square roots (compute each root once, reuse across pairs)."""
    diff = mean1.to(torch.float64) - mean2.to(torch.float64)
    traces = (root1.to(torch.float64) ** 2).sum() + (root2.to(torch.float64) ** 2).sum()  # Tr S = |S^{1/2}|_F^2
    return float((diff @ diff + traces - 2 * trace_sqrt_product(root1, root2)).clamp_min(0))


def frechet_distance(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> float:
    """``|m1 - m2|^2 + Tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})`` in float64 (squared W2)."""
    if mean1.ndim != 1 or mean1.shape != mean2.shape:
        raise ValueError(f"means must be vectors of one shape, got {tuple(mean1.shape)} and {tuple(mean2.shape)}")
    if cov1.shape != (mean1.numel(), mean1.numel()) or cov2.shape != cov1.shape:
        raise ValueError(
            f"covariances must be {mean1.numel()}x{mean1.numel()}, got {tuple(cov1.shape)} and {tuple(cov2.shape)}"
        )
    return frechet_distance_roots(mean1, sqrtm_psd(cov1), mean2, sqrtm_psd(cov2))
