"""softdiff: diffusion models whose forward process is any linear corruption (Soft Diffusion).

The public API in one place; each subpackage's ``__init__`` has the rest:
``softdiff.corrupt`` (operators, schedules, process), ``softdiff.schedule`` (level selection
and level files), ``softdiff.score``
(objectives, denoisers, the Gaussian oracle), ``softdiff.samplers``, ``softdiff.models``,
``softdiff.train``, ``softdiff.eval``, ``softdiff.restore`` (posterior sampling for degraded
images), ``softdiff.data`` and ``softdiff.conditioning`` (labels through every layer and
classifier-free guidance).
"""

from .conditioning import NULL_CLASS, Guided
from .corrupt import (
    CorruptionConfig,
    CorruptionProcess,
    GaussianBlur,
    GeometricNoise,
    Identity,
    LinearCorruption,
    Mask,
    build_process,
    check_operator,
    compose,
    register_corruption,
)
from .models import UNet, UNetConfig
from .registry import Registry
from .samplers import (
    GaussianPrior,
    MixturePrior,
    dpmpp_2m,
    dpmpp_2m_sde,
    dpmpp_3m,
    euler,
    generate,
    heun,
    momentum,
    naive,
    time_grid,
)
from .schedule import read_levels, retime, select_levels
from .score import Denoiser, DenoisingScoreMatching, SoftScoreMatching, X0Regression, score_from_denoiser
from .train import RunConfig, load_run

__version__ = "0.1.0"

__all__ = [
    "LinearCorruption",
    "Identity",
    "GaussianBlur",
    "Mask",
    "compose",
    "check_operator",
    "register_corruption",
    "GeometricNoise",
    "CorruptionProcess",
    "CorruptionConfig",
    "build_process",
    "select_levels",
    "read_levels",
    "retime",
    "UNet",
    "UNetConfig",
    "Denoiser",
    "SoftScoreMatching",
    "DenoisingScoreMatching",
    "X0Regression",
    "score_from_denoiser",
    "GaussianPrior",
    "MixturePrior",
    "momentum",
    "naive",
    "euler",
    "heun",
    "dpmpp_2m",
    "dpmpp_3m",
    "dpmpp_2m_sde",
    "time_grid",
    "generate",
    "RunConfig",
    "load_run",
    "Registry",
    "Guided",
    "NULL_CLASS",
    "__version__",
]
