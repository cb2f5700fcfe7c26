"""Batched conjugate gradients and the Gaussian (linear) estimators built on them.

Every image of a batch is its own linear system: step sizes and stopping are per image,
so an image's solution never depends on the other images in its batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .operators import Degradation

__all__ = ["conjugate_gradient", "gaussian_posterior_mean", "tikhonov", "proximal_step"]

LinearMap = Callable[[Tensor], Tensor]


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).flatten(1).sum(1)[:, None, None, None]


def conjugate_gradient(
    apply: LinearMap, b: Tensor, *, iters: int = 50, tol: float = 1e-6, x0: Tensor | None = None
) -> Tensor:
    """Solve ``M x = b`` per image for a symmetric positive (semi-)definite ``M`` given as ``apply``.

    Stops an image once ``||r|| <= tol ||b||``, or after ``iters`` steps (early stopping
    regularises an ill-conditioned system). A singular ``M`` is fine when ``b`` lies in its
    range: the iterates stay there.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = _dot(r, r)
    stop = (tol * b.flatten(1).norm(dim=1)) ** 2
    active = rr.flatten() > stop
    for _ in range(iters):
        if not bool(active.any()):
            break
        mp = apply(p)
        curvature = _dot(p, mp)
        live = active[:, None, None, None] & (curvature > 0)
        alpha = torch.where(live, rr / torch.where(live, curvature, torch.ones_like(curvature)), 0.0)
        x = x + alpha * p
        r = r - alpha * mp
        rr_next = _dot(r, r)
        beta = torch.where(live, rr_next / torch.where(live, rr, torch.ones_like(rr)), 0.0)
        p = torch.where(live, r + beta * p, p)
        rr = torch.where(live, rr_next, rr)
        active = active & live.flatten() & (rr.flatten() > stop)
    return x


def gaussian_posterior_mean(
    A: Degradation,
    y: Tensor,
    sigma_y: float,
    mean: Tensor,
    cov: LinearMap,
    *,
    iters: int = 100,
    tol: float = 1e-6,
) -> Tensor:
    """``E[x | y] = m + S A^T (A S A^T + sigma_y^2 I)^{-1} (y - A m)`` for ``x ~ N(m, S)``, by CG.

    ``cov`` applies ``S`` to a batch of images. With ``S`` the data covariance this is the
    Wiener filter (the best linear estimate); with ``S = I / lambda`` it is Tikhonov.
    """
    m = mean.expand_as(y)
    u = conjugate_gradient(lambda v: A(cov(A.adjoint(v))) + sigma_y**2 * v, y - A(m), iters=iters, tol=tol)
    return m + cov(A.adjoint(u))


def tikhonov(
    A: Degradation, y: Tensor, lam: float, mean: Tensor | None = None, *, iters: int = 100, tol: float = 1e-6
) -> Tensor:
    """``argmin ||A x - y||^2 + lam ||x - m||^2 = m + (A^T A + lam I)^{-1} A^T (y - A m)``, by CG.

    ``m`` (default 0) is where unseen directions go: the mean training image is the
    natural choice for masks, where 0 would paint holes mid-grey.
    """
    if lam < 0:
        raise ValueError(f"the Tikhonov weight must be >= 0, got {lam}")
    m = torch.zeros_like(y) if mean is None else mean.expand_as(y)
    rhs = A.adjoint(y - A(m))
    return m + conjugate_gradient(lambda v: A.adjoint(A(v)) + lam * v, rhs, iters=iters, tol=tol)


def proximal_step(A: Degradation, x: Tensor, y: Tensor, rho: float, *, iters: int = 50, tol: float = 1e-6) -> Tensor:
    """``argmin_z ||y - A z||^2 + rho ||z - x||^2 = x + A^T (A A^T + rho I)^{-1} (y - A x)``, by CG.

    The push-through form stays defined at ``rho = 0`` (the projection onto ``A z = y`` nearest
    to ``x``, DDNM's range-null-space step), where ``(A^T A + rho I)`` would be singular.
    """
    if not rho >= 0:
        raise ValueError(f"the proximal weight rho must be >= 0, got {rho}")
    u = conjugate_gradient(lambda v: A(A.adjoint(v)) + rho * v, y - A(x), iters=iters, tol=tol)
    return x + A.adjoint(u)
