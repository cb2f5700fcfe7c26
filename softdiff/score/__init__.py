"""Objectives, parameterisations and scores from denoisers."""

from .gaussian import GaussianData
from .objectives import (
    OBJECTIVES,
    WEIGHTINGS,
    DenoisingScoreMatching,
    LevelTimes,
    Objective,
    SoftScoreMatching,
    X0Regression,
    build_objective,
    uniform_t,
)
from .parameterisation import PARAMETERISATIONS, Denoiser, score_from_denoiser

__all__ = [
    "GaussianData",
    "Objective",
    "SoftScoreMatching",
    "DenoisingScoreMatching",
    "X0Regression",
    "OBJECTIVES",
    "WEIGHTINGS",
    "build_objective",
    "uniform_t",
    "LevelTimes",
    "Denoiser",
    "score_from_denoiser",
    "PARAMETERISATIONS",
]
