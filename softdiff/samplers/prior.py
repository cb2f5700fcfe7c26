"""The prior at ``t = 1``: a Gaussian fit to ``C_1 x_0`` plus ``s_1`` noise.

For heavy blur ``C_1 x_0`` lives in a tiny subspace, so a mean and a low-rank covariance
(top principal components) describe it well and are small enough to store with a model.
For the identity the data part is negligible next to ``s_1``; for a full mask it is zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess

__all__ = ["GaussianPrior"]


class GaussianPrior:
    """``x_1 = mean + U diag(sqrt(var)) z + s_1 eta`` over images of a fixed shape."""

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
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.mean.shape
        return c, h, w

    @classmethod
    @torch.no_grad()
    def fit(cls, process: CorruptionProcess, x0: Tensor, rank: int = 32, batch_size: int = 1024) -> GaussianPrior:
        """Fit to ``C_1 x0`` over a sample of clean images ``x0`` of shape ``(N, C, H, W)``."""
        if x0.ndim != 4 or x0.shape[0] < 2:
            raise ValueError(f"fitting a prior needs at least 2 images of shape (N, C, H, W), got {tuple(x0.shape)}")
        y = torch.cat([process.C(chunk, 1.0) for chunk in x0.split(batch_size)]).flatten(1).to(torch.float64)
        mean = y.mean(0)
        _, sing, vh = torch.linalg.svd(y - mean, full_matrices=False)
        rank = min(rank, sing.numel())
        variances = sing[:rank] ** 2 / (y.shape[0] - 1)
        noise = float(process.s(torch.tensor(1.0, dtype=torch.float64)))
        return cls(mean.reshape(x0.shape[1:]).float(), vh[:rank].T.float().contiguous(), variances.float(), noise)

    def sample_from(self, z: Tensor, eta: Tensor) -> Tensor:
        """Deterministic map from standard normals ``z (B, rank)`` and ``eta (B, C, H, W)``."""
        low_rank = (z * self.variances.to(z).sqrt()) @ self.components.to(z).T
        return self.mean.to(eta) + low_rank.reshape(eta.shape) + self.noise * eta

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
        z = torch.randn(n, self.variances.numel(), generator=generator, device=device)
        eta = torch.randn(n, *self.shape, generator=generator, device=device)
        return self.sample_from(z, eta)

    def state_dict(self) -> dict[str, Tensor]:
        """Plain tensors, ready for safetensors."""
        return {
            "mean": self.mean.contiguous(),
            "components": self.components.contiguous(),
            "variances": self.variances.contiguous(),
            "noise": torch.tensor([self.noise]),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> GaussianPrior:
        missing = {"mean", "components", "variances", "noise"} - set(state)
        if missing:
            raise ValueError(f"prior state is missing {sorted(missing)}")
        if state["noise"].numel() != 1:
            raise ValueError(f"prior noise must be one number, got shape {tuple(state['noise'].shape)}")
        return cls(state["mean"], state["components"], state["variances"], float(state["noise"].item()))
