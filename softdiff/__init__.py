"""softdiff: diffusion models whose forward process is any linear corruption (Soft Diffusion).

The public API in one place; each subpackage's ``__init__`` has the rest:
``softdiff.corrupt`` (operators, schedules, process, level selection), ``softdiff.score``
(objectives, denoisers, the Gaussian oracle), ``softdiff.samplers``, ``softdiff.models``,
``softdiff.train``, ``softdiff.eval``, ``softdiff.restore`` (posterior sampling for degraded
images) and ``softdiff.data``.
"""

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
    register_corruption,
    select_levels,
)
from .models import UNet, UNetConfig
from .samplers import GaussianPrior, euler, generate, heun, momentum, naive
from .score import Denoiser, DenoisingScoreMatching, SoftScoreMatching, X0Regression, score_from_denoiser
from .train import RunConfig, load_run

__version__ = "0.1.0"

__all__ = [
    "LinearCorruption",
    "Identity",
    "GaussianBlur",
    "Mask",
    "compose",
    "register_corruption",
    "GeometricNoise",
    "CorruptionProcess",
    "CorruptionConfig",
    "build_process",
    "select_levels",
    "UNet",
    "UNetConfig",
    "Denoiser",
    "SoftScoreMatching",
    "DenoisingScoreMatching",
    "X0Regression",
    "score_from_denoiser",
    "GaussianPrior",
    "momentum",
    "naive",
    "euler",
    "heun",
    "generate",
    "RunConfig",
    "load_run",
    "__version__",
]
