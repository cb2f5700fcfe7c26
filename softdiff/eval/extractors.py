"""Feature extractors for FID/KID: ``nn.Module``s that torchmetrics accepts as ``feature=``.

Each declares ``num_features`` (so torchmetrics never pushes a dummy 299x299 image through it
to discover the dimension) and a ``description`` that every reported number carries. Inputs
are uint8 images or floats in [-1, 1]; floats are clamped and rounded to uint8 first, so
generated samples are measured exactly as their saved PNGs would be, like the real data.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data.datasets import to_float
from ..resources import cache_root
from .features import FEATURE_NET_VERSION, FeatureNet, load_feature_net, update_digest

__all__ = [
    "FeatureExtractor",
    "FashionFeatures",
    "InceptionFeatures",
    "InceptionUnavailable",
    "INCEPTION_WEIGHTS_FILE",
    "default_features",
    "default_inception_weights",
    "get_extractor",
    "to_uint8",
]

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
FASHION_SHAPE = (1, 28, 28)  # the only images the shipped feature net takes


def default_inception_weights() -> Path:
    """Where the weights are looked for without ``--inception-weights``: in ``$SOFTDIFF_CACHE`` or ~/.cache/softdiff."""
    return cache_root() / INCEPTION_WEIGHTS_FILE


def _inception_help() -> str:
    return (
        "Inception features need the optional extra `pip install 'softdiff[inception]'` (torch-fidelity) "
        f"and the FID Inception-v3 weights file {INCEPTION_WEIGHTS_FILE} (from torch-fidelity's releases): "
        f"put it at {default_inception_weights()} or pass --inception-weights PATH; "
        "offline, 28x28 grey runs can use --features fashion"
    )


def default_features(shape: tuple[int, ...]) -> str:
    """The features a run's images get when none are asked for: the shipped net fits 28x28 grey only."""
    return "fashion" if tuple(shape) == FASHION_SHAPE else "inception"


class InceptionUnavailable(ValueError):
    """The Inception extra or its weights file is missing (a user error: says what to install)."""


def to_uint8(images: Tensor) -> Tensor:
    """uint8 images pass through; floats in [-1, 1] are clamped and rounded to 0..255."""
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 or float in [-1, 1], got {images.dtype}")
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class FeatureExtractor(nn.Module):
    """Base class: ``forward(images (N, C, H, W)) -> features (N, num_features)``, no gradients."""

    num_features: int
    description: str

    def features(self, images: Tensor) -> Tensor:
        """Features of uint8 images (already checked and on the right device)."""
        raise NotImplementedError

    def check(self, images: Tensor) -> None:
        """Raise ValueError when images do not fit this extractor."""
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        self.check(images)
        return self.features(to_uint8(images))

    def fingerprint(self) -> str:
        """SHA-256 of the description and every weight: changes whenever the features would."""
        h = hashlib.sha256(self.description.encode())
        for name, t in sorted(self.state_dict().items()):
            h.update(name.encode())
            update_digest(h, t)
        return h.hexdigest()


class FashionFeatures(FeatureExtractor):
    """The shipped Fashion-MNIST classifier's penultimate embedding (offline, 28x28 grey)."""

    def __init__(self, net: FeatureNet | None = None) -> None:
        super().__init__()
        self.net = (net if net is not None else load_feature_net()).eval().requires_grad_(False)
        self.num_features = self.net.embed_dim
        self.description = f"fashion-feature-net v{FEATURE_NET_VERSION} ({self.num_features}-d)"

    def train(self, mode: bool = True) -> FashionFeatures:
        """Stay in eval mode (BatchNorm running statistics, no dropout) whatever the caller asks."""
        return super().train(False)

    def check(self, images: Tensor) -> None:
        super().check(images)
        if tuple(images.shape[1:]) != FASHION_SHAPE:
            raise ValueError(
                f"fashion features take (N, 1, 28, 28) grey images, got {tuple(images.shape)}; "
                "use --features inception for other image sizes"
            )

    def features(self, images: Tensor) -> Tensor:
        return self.net.embed(to_float(images))


def inception_available() -> bool:
    return importlib.util.find_spec("torch_fidelity") is not None


class InceptionFeatures(FeatureExtractor):
    """Inception-v3 pool3 features (torch-fidelity's FID network) from a local weights file.

    Grey images are repeated to RGB; every image is resized to 299x299 by bilinear
    interpolation with antialias=True (torchmetrics' ``NoTrainInceptionV3(antialias=True)``).
    """

    def __init__(self, weights: str | Path | None) -> None:
        super().__init__()
        if not inception_available():
            raise InceptionUnavailable(f"torch-fidelity is not installed. {_inception_help()}")
        if weights is None and default_inception_weights().is_file():
            weights = default_inception_weights()
        if weights is None:
            raise InceptionUnavailable(f"no Inception weights given or found. {_inception_help()}")
        if not Path(weights).is_file():
            raise InceptionUnavailable(f"Inception weights {weights} not found. {_inception_help()}")
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=str(weights),
            antialias=True,
        )
        self.num_features = 2048
        self.description = "inception-v3 pool3 (2048-d; grey->RGB, bilinear resize to 299x299, antialias=True)"

    def check(self, images: Tensor) -> None:
        super().check(images)
        if images.shape[1] not in (1, 3):
            raise ValueError(f"inception features take 1- or 3-channel images, got {images.shape[1]} channels")

    def features(self, images: Tensor) -> Tensor:
        rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        return self.net(rgb.contiguous())


def get_extractor(features: str = "fashion", *, inception_weights: str | Path | None = None) -> FeatureExtractor:
    """``"fashion"`` (shipped classifier, offline) or ``"inception"`` (extra + weights file)."""
    if features == "fashion":
        return FashionFeatures()
    if features == "inception":
        return InceptionFeatures(inception_weights)
    raise ValueError(f"features must be 'fashion' or 'inception', got {features!r}")
