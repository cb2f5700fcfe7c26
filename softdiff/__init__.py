"""softdiff: diffusion models whose forward process is any linear corruption (Soft Diffusion)."""

from .corrupt import (
    CorruptionConfig,
    CorruptionProcess,
    GaussianBlur,
    GeometricNoise,
    Identity,
    LinearCorruption,
    Mask,
    build_process,
    compose,
)

__version__ = "0.1.0"

__all__ = [
    "LinearCorruption",
    "Identity",
    "GaussianBlur",
    "Mask",
    "compose",
    "GeometricNoise",
    "CorruptionProcess",
    "CorruptionConfig",
    "build_process",
    "__version__",
]
