"""Objectives, parameterisations and scores from denoisers."""

from .gaussian import GaussianData
from .objectives import (
    DEFAULT_ANCHOR,
    OBJECTIVES,
    WEIGHTINGS,
    DenoisingScoreMatching,
    LevelTimes,
    LogitNormalTimes,
    LogNormalNoise,
    LossScale,
    Objective,
    SoftScoreMatching,
    X0Regression,
    build_objective,
    loss_scale,
    uniform_t,
)
from .parameterisation import PARAMETERISATIONS, Denoiser, score_from_denoiser
from .precondition import (
    DataStatistics,
    Preconditioning,
    ScalarPreconditioning,
    SpectralPreconditioning,
    build_preconditioning,
    needs_statistics,
)

__all__ = [
    "GaussianData",
    "Objective",
    "SoftScoreMatching",
    "DenoisingScoreMatching",
    "X0Regression",
    "OBJECTIVES",
    "WEIGHTINGS",
    "build_objective",
    "DEFAULT_ANCHOR",
    "uniform_t",
    "LevelTimes",
    "LogNormalNoise",
    "LogitNormalTimes",
    "LossScale",
    "loss_scale",
    "DataStatistics",
    "Preconditioning",
    "ScalarPreconditioning",
    "SpectralPreconditioning",
    "build_preconditioning",
    "needs_statistics",
    "Denoiser",
    "score_from_denoiser",
    "PARAMETERISATIONS",
]
