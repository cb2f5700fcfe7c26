"""The prior at ``t = 1``: a fit to ``C_1 x_0`` plus ``s_1`` noise.

For heavy blur ``C_1 x_0`` lives in a tiny subspace, so its top principal components
describe it well and are small enough to store with a model. In that subspace the data are
*not* Gaussian: the blurred silhouettes of trousers, bags and shoes form separate clusters,
and a single Gaussian draws shapes between them that the denoiser then has to make sense of
(on the main job's model it costs the momentum sampler half its FID: docs/benchmarks.md).
:class:`MixturePrior` fits a Gaussian mixture there instead (the default, 10 components);
:class:`GaussianPrior` is the one-component case and what older checkpoints hold. For the
identity the data part is negligible next to ``s_1``; for a full mask it is zero.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess

__all__ = ["GaussianPrior", "MixturePrior", "Prior", "fit_prior", "prior_from_state_dict"]


_P = TypeVar("_P", bound="_SubspacePrior")


class _SubspacePrior:
    """What both priors share: images ``mean + (a low-rank draw) + s_1 eta``, saved as plain tensors.

    A subclass names its saved tensors in ``_STATE``, in the order its ``__init__`` takes them
    (``noise`` last), and says how many standard normals ``sample_from`` takes per sample.
    """

    _STATE: tuple[str, ...]
    mean: Tensor
    noise: float

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.mean.shape
        return c, h, w

    @property
    def latent_dim(self) -> int:
        """Standard normals per sample in ``sample_from``'s ``z``."""
        raise NotImplementedError

    def sample_from(self, z: Tensor, eta: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        eta = torch.randn(n, *self.shape, generator=generator, device=device)
        return self.sample_from(z, eta)

    def state_dict(self) -> dict[str, Tensor]:
        """Plain tensors, ready for safetensors."""
        return {**{name: getattr(self, name).contiguous() for name in self._STATE}, "noise": torch.tensor([self.noise])}

    @classmethod
    def from_state_dict(cls: type[_P], state: dict[str, Tensor]) -> _P:
        missing = {*cls._STATE, "noise"} - set(state)
        if missing:
            raise ValueError(f"prior state is missing {sorted(missing)}")
        if state["noise"].numel() != 1:
            raise ValueError(f"prior noise must be one number, got shape {tuple(state['noise'].shape)}")
        return cls(*(state[name] for name in cls._STATE), float(state["noise"].item()))  # type: ignore[call-arg]


class GaussianPrior(_SubspacePrior):
    """``x_1 = mean + U diag(sqrt(var)) z + s_1 eta`` over images of a fixed shape."""

    _STATE = ("mean", "components", "variances")

    def __init__(self, mean: Tensor, components: Tensor, variances: Tensor, noise: float) -> None:
        if mean.ndim != 3:
            raise ValueError(f"prior mean must be one (C, H, W) image, got shape {tuple(mean.shape)}")
        if components.shape != (mean.numel(), variances.numel()):
            expected = (mean.numel(), variances.numel())
            raise ValueError(f"prior components must be {expected}, got {tuple(components.shape)}")
        if noise < 0 or bool((variances < 0).any()):
            raise ValueError("prior variances and noise must be non-negative")
        self.mean, self.components, self.variances, self.noise = mean, components, variances, float(noise)

    @property
    def latent_dim(self) -> int:
        """Standard normals per sample in ``sample_from``'s ``z``."""
        return self.variances.numel()

    @classmethod
    @torch.no_grad()
    def fit(cls, process: CorruptionProcess, x0: Tensor, rank: int = 32, batch_size: int = 1024) -> GaussianPrior:
        """Fit to ``C_1 x0`` over a sample of clean images ``x0`` of shape ``(N, C, H, W)``."""
        mean, basis, coefficients, noise = _principal_subspace(process, x0, rank, batch_size)
        variances = coefficients.square().sum(0) / (coefficients.shape[0] - 1)
        return cls(mean.reshape(x0.shape[1:]).float(), basis.float().contiguous(), variances.float(), noise)

    def sample_from(self, z: Tensor, eta: Tensor) -> Tensor:
        """Deterministic map from standard normals ``z (B, rank)`` and ``eta (B, C, H, W)``."""
        low_rank = (z * self.variances.to(z).sqrt()) @ self.components.to(z).T
        return self.mean.to(eta) + low_rank.reshape(eta.shape) + self.noise * eta


class MixturePrior(_SubspacePrior):
    """``x_1 = mean + U c + s_1 eta`` with ``c ~ sum_j w_j N(m_j, L_j L_j^T)`` in the top-``r`` PCA subspace.

    ``z`` carries ``r + 1`` standard normals per sample: the first ``r`` shape the chosen
    component's Gaussian, the last picks the component (through the normal CDF), so sample
    ``i`` still depends only on its own seeded stream. One component with ``m = 0`` and a
    diagonal ``L`` is :class:`GaussianPrior` exactly.
    """

    _STATE = ("mean", "components", "weights", "centres", "scales")

    def __init__(
        self, mean: Tensor, components: Tensor, weights: Tensor, centres: Tensor, scales: Tensor, noise: float
    ) -> None:
        k, r = centres.shape if centres.ndim == 2 else (0, 0)
        if mean.ndim != 3 or components.shape != (mean.numel(), r) or weights.shape != (k,) or k < 1:
            raise ValueError(
                f"mixture prior: need mean (C, H, W), components (C*H*W, r), weights (k,), centres (k, r); got "
                f"{tuple(mean.shape)}, {tuple(components.shape)}, {tuple(weights.shape)}, {tuple(centres.shape)}"
            )
        if scales.shape != (k, r, r):
            raise ValueError(f"mixture prior scales must be {(k, r, r)}, got {tuple(scales.shape)}")
        if noise < 0 or bool((weights < 0).any()) or not math.isclose(float(weights.sum()), 1.0, rel_tol=1e-4):
            raise ValueError("mixture prior weights must be non-negative and sum to 1, and its noise non-negative")
        self.mean, self.components, self.weights = mean, components, weights
        self.centres, self.scales, self.noise = centres, scales, float(noise)

    @property
    def latent_dim(self) -> int:
        return self.centres.shape[1] + 1

    @classmethod
    @torch.no_grad()
    def fit(
        cls,
        process: CorruptionProcess,
        x0: Tensor,
        rank: int = 32,
        mixtures: int = 10,
        iterations: int = 50,
        seed: int = 0,
        batch_size: int = 1024,
    ) -> MixturePrior:
        """EM for a full-covariance mixture of ``mixtures`` Gaussians on the PCA coefficients of ``C_1 x0``."""
        mean, basis, coefficients, noise = _principal_subspace(process, x0, rank, batch_size)
        weights, centres, covariances = _em(coefficients, mixtures, iterations, seed)
        scales = torch.linalg.cholesky(covariances)
        f = torch.float32
        return cls(
            mean.reshape(x0.shape[1:]).to(f), basis.to(f).contiguous(), weights.to(f), centres.to(f),
            scales.to(f).contiguous(), noise,
        )  # fmt: skip

    def sample_from(self, z: Tensor, eta: Tensor) -> Tensor:
        """Deterministic map from standard normals ``z (B, r + 1)`` and ``eta (B, C, H, W)``."""
        r = self.centres.shape[1]
        pick = 0.5 * (1 + torch.erf(z[:, r].double() / math.sqrt(2)))
        cumulative = self.weights.double().cumsum(0).to(pick.device)
        j = torch.searchsorted(cumulative, pick, right=True).clamp_max(len(self.weights) - 1)
        scales, centres = self.scales.to(z), self.centres.to(z)
        coefficients = centres[j] + (scales[j] @ z[:, :r, None]).squeeze(-1)
        low_rank = coefficients @ self.components.to(z).T
        return self.mean.to(eta) + low_rank.reshape(eta.shape) + self.noise * eta


Prior = GaussianPrior | MixturePrior


def fit_prior(
    process: CorruptionProcess, x0: Tensor, rank: int = 32, mixtures: int = 1, seed: int = 0
) -> GaussianPrior | MixturePrior:
    """The prior a run stores: one Gaussian (``mixtures = 1``) or a mixture of ``mixtures``.

    A mixture never gets more components than half the images it is fitted on.
    """
    mixtures = max(1, min(mixtures, x0.shape[0] // 2))
    if mixtures == 1:
        return GaussianPrior.fit(process, x0, rank=rank)
    return MixturePrior.fit(process, x0, rank=rank, mixtures=mixtures, seed=seed)


def prior_from_state_dict(state: dict[str, Tensor]) -> GaussianPrior | MixturePrior:
    """Either kind, told apart by its keys (checkpoints before the mixture prior hold a Gaussian)."""
    return MixturePrior.from_state_dict(state) if "weights" in state else GaussianPrior.from_state_dict(state)


def _principal_subspace(
    process: CorruptionProcess, x0: Tensor, rank: int, batch_size: int
) -> tuple[Tensor, Tensor, Tensor, float]:
    """``C_1 x0``'s mean, its top-``rank`` principal directions ``(D, r)``, the images' coefficients, and ``s_1``."""
    if x0.ndim != 4 or x0.shape[0] < 2:
        raise ValueError(f"fitting a prior needs at least 2 images of shape (N, C, H, W), got {tuple(x0.shape)}")
    y = torch.cat([process.C(chunk, 1.0) for chunk in x0.split(batch_size)]).flatten(1).to(torch.float64)
    mean = y.mean(0)
    _, sing, vh = torch.linalg.svd(y - mean, full_matrices=False)
    basis = vh[: min(rank, sing.numel())].T
    noise = float(process.s(torch.tensor(1.0, dtype=torch.float64)))
    return mean, basis, (y - mean) @ basis, noise


def _em(c: Tensor, k: int, iterations: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Maximum-likelihood mixture of ``k`` full-covariance Gaussians for the rows of ``c`` (float64).

    k-means++ seeding (deterministic in ``seed``), then EM. Every covariance gets a small
    ridge (1e-4 of the data's mean variance) so none collapses onto a few points.
    """
    n, r = c.shape
    if not 1 <= k <= n:
        raise ValueError(f"a mixture prior of {k} components needs at least {k} images, got {n}")
    g = torch.Generator().manual_seed(seed)
    centres = c[torch.randint(n, (1,), generator=g)]
    for _ in range(1, k):  # k-means++: the next centre far from those chosen
        d2 = torch.cdist(c, centres).square().min(1).values
        odds = d2 if float(d2.sum()) > 0 else torch.ones_like(d2)  # all points on the centres (e.g. C_1 = 0)
        centres = torch.cat([centres, c[torch.multinomial(odds, 1, generator=g)]])
    ridge = (1e-4 * float(c.var(0).mean()) + 1e-12) * torch.eye(r, dtype=c.dtype)
    resp = torch.nn.functional.one_hot(torch.cdist(c, centres).argmin(1), k).to(c.dtype)
    for _ in range(iterations):
        resp = _responsibilities(c, *_m_step(c, resp, ridge))
    weights, centres, covariances = _m_step(c, resp, ridge)
    return weights / weights.sum(), centres, covariances


def _m_step(c: Tensor, resp: Tensor, ridge: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Weights, centres and (ridged) covariances from soft assignments ``resp (N, k)``."""
    counts = resp.sum(0) + 1e-12
    centres = (resp.T @ c) / counts[:, None]
    centred = c[:, None, :] - centres[None]
    covariances = torch.einsum("nk,nki,nkj->kij", resp, centred, centred) / counts[:, None, None] + ridge
    return counts / c.shape[0], centres, covariances


def _responsibilities(c: Tensor, weights: Tensor, centres: Tensor, covariances: Tensor) -> Tensor:
    """Posterior component probabilities of every row of ``c`` (the E-step)."""
    chol = torch.linalg.cholesky(covariances)
    log_p = torch.empty(c.shape[0], len(weights), dtype=c.dtype)
    for j in range(len(weights)):
        white = torch.linalg.solve_triangular(chol[j], (c - centres[j]).T, upper=False)
        log_p[:, j] = torch.log(weights[j]) - torch.log(torch.diagonal(chol[j])).sum() - 0.5 * white.square().sum(0)
    return torch.softmax(log_p, 1)
