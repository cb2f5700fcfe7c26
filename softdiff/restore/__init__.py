"""Restoration with a trained corruption model: posterior sampling for ``y = A x + n``.

Operators from specs (``blur:sigma=2``, ``mask:fraction=0.5``, ``box:size=12``,
``pixelate:factor=4``, ``level:t=0.6``), methods (level entry, ``project``, DPS, DDRM,
DiffPIR, PiGDM, and the Tikhonov and Wiener baselines), the batched, per-image-seeded driver, and metrics.
"""

from .build import (
    METHODS,
    NEEDS_TRAINING_IMAGES,
    build_method,
    check_method_name,
    default_sampler,
    level_entry_applies,
    tune_tikhonov,
)
from .ddrm import DDRM
from .diffpir import DiffPIR
from .driver import STRIDE, Restoration, degrade, restore
from .linalg import conjugate_gradient, gaussian_posterior_mean, proximal_step, tikhonov
from .methods import (
    DPS,
    DPS_UPDATES,
    Covariance,
    DiffusionModel,
    Isotropic,
    LevelEntry,
    Method,
    Problem,
    Project,
    Tikhonov,
    Wiener,
    estimate_posterior_variance,
)
from .metrics import consistency, psnr, score_restoration, ssim
from .operators import (
    Degradation,
    OperatorSpec,
    build_operator,
    degradation_names,
    find_level,
    parse_operator,
    register_degradation,
)
from .pigdm import DEFAULT_PIGDM_WEIGHTING, PIGDM_WEIGHTINGS, PiGDM, paper_variance
from .svd import SingularForm, singular_form

__all__ = [
    "Degradation",
    "OperatorSpec",
    "parse_operator",
    "build_operator",
    "register_degradation",
    "degradation_names",
    "find_level",
    "DiffusionModel",
    "Problem",
    "Method",
    "LevelEntry",
    "Project",
    "DPS",
    "DPS_UPDATES",
    "Tikhonov",
    "Wiener",
    "DDRM",
    "DiffPIR",
    "PiGDM",
    "paper_variance",
    "PIGDM_WEIGHTINGS",
    "DEFAULT_PIGDM_WEIGHTING",
    "SingularForm",
    "singular_form",
    "proximal_step",
    "Isotropic",
    "Covariance",
    "estimate_posterior_variance",
    "conjugate_gradient",
    "gaussian_posterior_mean",
    "tikhonov",
    "Restoration",
    "restore",
    "degrade",
    "STRIDE",
    "METHODS",
    "NEEDS_TRAINING_IMAGES",
    "build_method",
    "check_method_name",
    "default_sampler",
    "level_entry_applies",
    "tune_tikhonov",
    "psnr",
    "ssim",
    "consistency",
    "score_restoration",
]


def __getattr__(name: str) -> object:
    """``DiffusionPrior``, the old name of :class:`DiffusionModel` ("prior" now means only the law at t = 1)."""
    if name == "DiffusionPrior":
        import warnings

        warnings.warn("softdiff.restore.DiffusionPrior is now DiffusionModel", DeprecationWarning, stacklevel=2)
        return DiffusionModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
