"""Level Gaussians and the Fréchet distances between them, exact or bounded.

At source time ``u`` the corrupted data ``C_u x0 + s_u eta`` is modelled by
``N(m_u, S_u)`` with ``m_u = C_u mean`` and ``S_u = C_u Cov C_u^T + s_u^2 I`` from the
moments of the clean images (adding the noise covariance analytically is the expectation
of fitting noisy samples, without the Monte-Carlo error). Float64 throughout.

When ``C_u`` is diagonal in the 2-D DCT basis (the DCT heat blur, the identity, their
compositions) and the coordinates are low DCT frequencies, ``P C_u x = g_u * P x``: the
projected covariance is computed once and every level is ``g g^T * S + s^2 I``, exact and
independent of the image size (:class:`LevelFitter`). That is what makes 64x64x3 cheap.

An exact pair distance needs two ``d x d`` matrix products and a symmetric eigenvalue
problem (~70 ms at d = 784 on 2 idle cores); :func:`distance_bounds` bounds every pair at
once from the per-level square roots, so the graph search computes few exact ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..corrupt import CorruptionProcess
from ..stats import eigh_psd, frechet_distance_roots, root_from_eigh
from .moments import DataMoments, pick_moments
from .projection import DCTProjection, make_projection

__all__ = ["fit_level", "LevelFitter", "distance_bounds", "level_distances"]


@torch.no_grad()
def fit_level(
    process: CorruptionProcess, moments: DataMoments, u: float, project: Callable[[Tensor], Tensor], chunk: int
) -> tuple[Tensor, Tensor]:
    """Mean and covariance of ``C_u x0 + s_u eta`` in projected coordinates."""
    mean = project(process.C(moments.mean[None], u))[0]
    z = torch.cat([project(process.C(rows, u)) for rows in moments.factor.split(chunk)])
    s2 = float(process.noise(torch.tensor(u, dtype=torch.float64))) ** 2
    cov = z.T @ z
    if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(cov).all()) and math.isfinite(s2)):
        raise ValueError(
            f"the corrupted images at level u = {u:.4g} hold NaN or infinite values: {process.operator!r} gives "
            "non-finite output there (check it with `softdiff check-operator`)"
        )
    cov.diagonal().add_(s2)
    return mean, cov


class LevelFitter:
    """``u -> (mean, cov)`` of the projected level Gaussian; the DCT-diagonal shortcut where it is exact.

    The shortcut needs a :class:`DCTProjection` and an operator with ``dct_gains``; then the
    data are projected once, and a level costs ``O(d^2)`` instead of ``C_u`` on every factor row.
    """

    def __init__(
        self, process: CorruptionProcess, moments: DataMoments, project: Callable[[Tensor], Tensor], chunk: int = 512
    ) -> None:
        self.process, self.moments, self.project, self.chunk = process, moments, project, chunk
        self._gains_at = self._spectral(process, moments, project)
        self.spectral = self._gains_at is not None
        if self._gains_at is not None:
            with torch.no_grad():
                self._mean = project(moments.mean[None])[0]
                z = torch.cat([project(rows) for rows in moments.factor.split(chunk)])
                self._cov = z.T @ z

    @staticmethod
    def _spectral(
        process: CorruptionProcess, moments: DataMoments, project: Callable[[Tensor], Tensor]
    ) -> Callable[[float], Tensor] | None:
        if not isinstance(project, DCTProjection):
            return None
        c, h, w = moments.shape
        r = project.r

        def gains(u: float) -> Tensor | None:
            g = process.operator.dct_gains(torch.tensor([u], dtype=torch.float64), h, w)
            return None if g is None else g[0, :, :r, :r].to(torch.float64).expand(c, r, r).flatten()

        return gains if gains(0.5) is not None else None

    @torch.no_grad()
    def __call__(self, u: float) -> tuple[Tensor, Tensor]:
        if self._gains_at is None:
            return fit_level(self.process, self.moments, u, self.project, self.chunk)
        g = self._gains_at(u)
        s2 = float(self.process.noise(torch.tensor(u, dtype=torch.float64))) ** 2
        cov = self._cov * g[:, None] * g[None, :]
        cov.diagonal().add_(s2)
        return g * self._mean, cov


def distance_bounds(
    means: Tensor, roots: Tensor, spectra: Tensor, marginal_sds: list[Tensor]
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds on every pairwise Fréchet distance, without a matrix square root per pair.

    With ``R = S^{1/2}``, the covariance part ``Tr S1 + Tr S2 - 2 Tr (R1 S2 R1)^{1/2}`` is at
    most ``|R1 - R2|_F^2`` (the coupling ``y = R2 R1^{-1} x``) and at least both
    ``|spec(R1) - spec(R2)|^2`` over sorted eigenvalues (Mirsky's inequality: the Bures
    distance is ``min_U |R1 - R2 U|_F``) and ``sum_k (sd1_k - sd2_k)^2`` over the standard
    deviations along any orthonormal basis (a coupling of the joint couples every
    coordinate). All are tight when the covariances nearly commute with each other and
    the basis: blur levels of natural images in the DCT basis, masks in the pixel basis.
    """
    mean_d2 = torch.cdist(means, means) ** 2
    lower = mean_d2 + torch.cdist(spectra, spectra) ** 2
    for sds in marginal_sds:
        lower = torch.maximum(lower, mean_d2 + torch.cdist(sds, sds) ** 2)
    traces = (spectra**2).sum(1)
    flat = roots.flatten(1)
    upper = mean_d2 + (traces[:, None] + traces[None, :] - 2 * flat @ flat.T).clamp_min(0)
    slack = 1e-9 * (traces[:, None] + traces[None, :] + mean_d2)  # round-off must never exclude the true value
    return (lower - slack).clamp_min(0).numpy(), (upper + slack).numpy()


def level_distances(
    process: CorruptionProcess,
    images: Tensor | DataMoments,
    times: Tensor | list[float],
    *,
    projection: int | Tensor | None = None,
    samples: int | None = None,
    seed: int = 0,
    chunk: int = 512,
) -> list[float]:
    """Fréchet distances between the level Gaussians at consecutive ``times`` of ``process`` (as given).

    Unlike :func:`select_levels` this honours the process's warp, so it measures any
    schedule, e.g. the default one at ``t = k / (K - 1)`` against a selected table.
    """
    moments = pick_moments(images, samples, seed)
    project = make_projection(projection, moments.shape)
    ts = torch.as_tensor(times, dtype=torch.float64).tolist()
    warped = [float(process.time(t, moments.mean[None])) for t in ts]
    fit = LevelFitter(CorruptionProcess(process.operator, process.noise), moments, project, chunk)
    fits = []
    for u in warped:
        mean, cov = fit(u)
        fits.append((mean, root_from_eigh(*eigh_psd(cov))))
    return [frechet_distance_roots(*a, *b) for a, b in zip(fits, fits[1:], strict=False)]
