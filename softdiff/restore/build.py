"""Methods by name, with what each needs from clean training images (never the test images).

``project`` and ``pigdm`` measure the variance curve ``r_t^2``, ``tikhonov`` tunes ``lambda``
and ``wiener`` fits the mean and covariance on ``train``: a held-out set of training images.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..corrupt import spectrum
from ..stats import moments
from .ddrm import DDRM
from .diffpir import DiffPIR
from .driver import degrade
from .linalg import tikhonov
from .methods import DPS, DiffusionModel, Isotropic, LevelEntry, Method, Project, Tikhonov, Wiener
from .methods import estimate_posterior_variance as _variance
from .operators import Degradation
from .pigdm import DEFAULT_PIGDM_WEIGHTING, PiGDM

__all__ = [
    "METHODS",
    "build_method",
    "check_method_name",
    "default_sampler",
    "tune_tikhonov",
    "level_entry_applies",
    "NEEDS_TRAINING_IMAGES",
]

METHODS = ("auto", "level", "project", "dps", "ddrm", "diffpir", "pigdm", "tikhonov", "wiener")
NEEDS_TRAINING_IMAGES = ("auto", "project", "pigdm", "tikhonov", "wiener")
LAMBDAS = tuple(10.0**e for e in torch.arange(-5, 1.25, 0.25).tolist())


def check_method_name(name: str) -> str:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return name


def default_sampler(model: DiffusionModel) -> str:
    """``ancestral`` when the model's operator is diagonal in a known basis (it reverses the process's
    transitions, which level entry needs, and restored best in docs/restoration.md), else ``momentum``."""
    return "ancestral" if spectrum(model.process.operator) is not None else "momentum"


def level_entry_applies(model: DiffusionModel, A: Degradation, sigma_y: float) -> bool:
    """True when ``A`` is a level ``C_tau`` (tau > 0) of the model's process and ``sigma_y <= s_tau``."""
    try:
        LevelEntry().check(model, A, sigma_y)
    except ValueError:
        return False
    return True


@torch.no_grad()
def tune_tikhonov(
    A: Degradation, train: Tensor, sigma_y: float, mean: Tensor | None = None, *, seed: int = 0
) -> tuple[float, dict[float, float]]:
    """The ``lambda`` of :func:`tikhonov` with the least mean squared error on ``train``; all tried values' MSE."""
    x = train.double()
    y = degrade(A, x, sigma_y, seed=seed + 1)  # another stream than the evaluation's
    m = None if mean is None else mean.double()
    errors = {lam: float((tikhonov(A, y, lam, m) - x).pow(2).mean()) for lam in LAMBDAS}
    return min(errors, key=errors.__getitem__), errors


def build_method(
    name: str,
    model: DiffusionModel,
    A: Degradation,
    sigma_y: float,
    *,
    train: Tensor | None = None,
    sampler: str = "auto",
    steps: int = 50,
    dps_scale: float = 1.0,
    lam: float | None = None,
    eta: float = 0.85,
    eta_b: float = 1.0,
    zeta: float = 0.3,
    pigdm_scale: float = 1.0,
    pigdm_weighting: str = DEFAULT_PIGDM_WEIGHTING,
    device: torch.device | str = "cpu",
) -> Method:
    """The method ``name`` (``auto``: level entry when it applies, else ``project``), ready to run.

    ``sampler="auto"`` picks :func:`default_sampler`. ``lam`` is Tikhonov's weight (tuned when
    None) or DiffPIR's ``lambda`` (1 when None); ``eta``, ``eta_b`` are DDRM's, ``zeta`` DiffPIR's.
    """
    check_method_name(name)
    sampler = default_sampler(model) if sampler == "auto" else sampler
    if name == "auto":
        name = "level" if level_entry_applies(model, A, sigma_y) else "project"
    if name == "level":
        return LevelEntry(sampler, steps)
    if name == "dps":
        return DPS(dps_scale, sampler, steps)
    if name == "ddrm":
        return DDRM(eta, eta_b, steps)
    if name == "diffpir":
        return DiffPIR(1.0 if lam is None else lam, zeta, steps)
    if train is None or len(train) < 2:
        raise ValueError(f"the {name} method needs clean training images (at least 2)")
    mean = train.float().mean(0)
    if name in ("project", "pigdm"):
        variance = _variance(model, train.float(), device=device)
        if name == "pigdm":
            return PiGDM(variance, pigdm_scale, sampler, steps, weighting=pigdm_weighting)  # type: ignore[arg-type]
        return Project(Isotropic(variance), sampler, steps)
    if name == "tikhonov":
        return Tikhonov(lam if lam is not None else tune_tikhonov(A, train, sigma_y, mean)[0], mean)
    _, cov = moments(train.double())
    return Wiener(mean, cov)
