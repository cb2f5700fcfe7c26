"""Preconditioning of the denoiser for any linear corruption (EDM's, generalised to any ``C_t``).

EDM (Karras et al. 2022, §5 and App. B.6) keeps the network's input and target at unit
variance for ``x = x0 + sigma n``. Here ``x_t = C_t x0 + s_t eta``, and the denoiser is

    D(x_t, t) = mean + skip_t(x~) + out_t(F(c_in(t) x~, t)),     x~ = x_t - C_t mean

with ``F`` the raw network and ``mean`` the data's mean image. The coefficients come from
second-order statistics of the data under the process (:class:`DataStatistics`, estimated
once and stored with the model), writing ``x' = x0 - mean``, ``D`` pixels:

    a   = E|x'|^2 / D        b_t = E<x', C_t x'> / D        v_t = E|C_t x'|^2 / D

* ``"precond"`` (scalar, any operator): ``skip`` is the best scalar multiple of ``x~``
  (least squares), ``out`` the scale of what is left::

      c_in = 1 / sqrt(v_t + s^2)     c_skip = b_t / (v_t + s^2)
      c_out^2 = E|x' - c_skip x~|^2 / D = (a v_t - b_t^2 + a s^2) / (v_t + s^2)

  With ``C = I`` (``a = b = v = sd^2``) these are EDM's ``c_in, c_skip, c_out`` exactly.
* ``"precond_dct"`` (per frequency, operators diagonal in the DCT basis: the heat blur,
  the identity): with gains ``g_k`` and data variances ``p_k`` of the DCT coefficients,
  ``x~_k = g_k x'_k + s eta_k`` is a scalar Gaussian channel per frequency, so EDM applies
  one frequency at a time (Hoogeboom & Salimans, *Blurring Diffusion Models*)::

      c_skip_k = g_k p_k / (g_k^2 p_k + s^2)      c_out_k^2 = p_k s^2 / (g_k^2 p_k + s^2)

  ``skip`` is then the Wiener filter, and the target ``(x'_k - c_skip_k x~_k) / c_out_k`` has
  unit variance in every frequency for *any* data. ``c_in`` stays scalar (as above).
* ``"residual"`` (``D = x_t + F(x_t)``, the paper's) and ``"x0"`` (``D = F(x_t)``) are the
  special cases ``mean = 0, c_in = 1, c_out = 1`` with ``c_skip = 1`` or ``0``.

``F`` is conditioned on ``t`` itself (``c_noise = t``): for vanilla diffusion with a
geometric ``s_t`` that is an affine map of EDM's ``log(sigma) / 4``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess, LevelTable
from ..corrupt.dct import dct2, idct2
from ..corrupt.diagonal import DiagonalForm
from ..registry import Registry
from ..tensors import DeviceCopies

__all__ = [
    "DataStatistics",
    "Preconditioning",
    "ScalarPreconditioning",
    "SpectralPreconditioning",
    "Parameterisation",
    "PARAMETERISATIONS",
    "DEFAULT_PARAMETERISATION",
    "ParameterisationRule",
    "register_parameterisation",
    "build_preconditioning",
    "needs_statistics",
]

Parameterisation = str  # a name registered in PARAMETERISATIONS
DEFAULT_PARAMETERISATION = "precond"  # the one default: a run's, and a Denoiser's given data statistics


@dataclass(frozen=True)
class DataStatistics:
    """The data's second-order statistics under a process, on an even grid of ``G`` times.

    ``cross[i] = b``, ``power[i] = v`` and ``excess[i] = a v - b^2 >= 0`` (Cauchy-Schwarz; kept
    separately so ``c_out`` stays accurate when ``s_t`` is tiny) at ``t = i / (G - 1)``,
    interpolated linearly in between; ``spectrum`` holds the variances of the DCT coefficients.
    """

    mean: Tensor  # (C, H, W)
    variance: float  # a
    cross: Tensor  # (G,)
    power: Tensor  # (G,)
    excess: Tensor  # (G,)
    spectrum: Tensor  # (C, H, W)

    @classmethod
    @torch.no_grad()
    def estimate(
        cls, process: CorruptionProcess, images: Tensor, grid: int = 129, batch_size: int = 4096
    ) -> DataStatistics:
        """Moments of ``images`` ``(N, C, H, W)`` (float64 math) under ``process`` at ``grid`` times."""
        if images.ndim != 4 or images.shape[0] < 2:
            raise ValueError(f"statistics need at least 2 images of shape (N, C, H, W), got {tuple(images.shape)}")
        if grid < 2:
            raise ValueError(f"the statistics grid needs at least 2 times, got {grid}")
        x = images.to(torch.float64)
        mean = x.mean(0)
        centred = x - mean
        pixels = centred[0].numel() * centred.shape[0]
        variance = float(centred.square().sum()) / pixels
        times = torch.linspace(0, 1, grid, dtype=torch.float64)
        form = process.operator.diagonal_form()
        if form is not None:
            cross, power = _moments_in_basis(process, form, centred, times)
        else:
            cross, power = _moments_by_applying(process, centred, times, batch_size)
        cross, power = cross / pixels, power / pixels
        excess = (variance * power - cross.square()).clamp_min(0)
        spectrum = dct2(centred).square().mean(0)
        return cls(mean, variance, cross, power, excess, spectrum)

    def at(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(b_t, v_t, a v_t - b_t^2)`` at times ``t`` (dtype and device of ``t``)."""
        cross, power, excess = self._tables
        return cross(t), power(t), excess(t)

    @functools.cached_property
    def _tables(self) -> tuple[LevelTable, LevelTable, LevelTable]:
        """Built once: each table keeps its copy on the step's device (no per-step host-to-device copy)."""
        return LevelTable(self.cross), LevelTable(self.power), LevelTable(self.excess)

    def spectrum_like(self, x: Tensor) -> Tensor:
        """``spectrum`` in ``x``'s device and dtype, copied once."""
        return self._spectrum.like(x)

    @functools.cached_property
    def _spectrum(self) -> DeviceCopies:
        return DeviceCopies(self.spectrum)

    def state_dict(self) -> dict[str, Tensor]:
        """Plain tensors, ready for safetensors."""
        return {
            "mean": self.mean.contiguous(),
            "variance": torch.tensor([self.variance], dtype=torch.float64),
            "cross": self.cross.contiguous(),
            "power": self.power.contiguous(),
            "excess": self.excess.contiguous(),
            "spectrum": self.spectrum.contiguous(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> DataStatistics:
        missing = {"mean", "variance", "cross", "power", "excess", "spectrum"} - set(state)
        if missing:
            raise ValueError(f"preconditioning statistics are missing {sorted(missing)}")
        if state["mean"].shape != state["spectrum"].shape or state["mean"].ndim != 3:
            raise ValueError("preconditioning statistics: mean and spectrum must both be one (C, H, W) image")
        if not (state["cross"].shape == state["power"].shape == state["excess"].shape) or state["cross"].numel() < 2:
            raise ValueError("preconditioning statistics: cross, power and excess must share one grid of >= 2 times")
        return cls(
            state["mean"],
            float(state["variance"].item()),
            state["cross"],
            state["power"],
            state["excess"],
            state["spectrum"],
        )


def _moments_by_applying(
    process: CorruptionProcess, centred: Tensor, times: Tensor, batch_size: int
) -> tuple[Tensor, Tensor]:
    """``sum <x', C_t x'>`` and ``sum |C_t x'|^2`` over the images at each time, by applying ``C_t`` (any operator)."""
    cross, power = torch.zeros(len(times), dtype=torch.float64), torch.zeros(len(times), dtype=torch.float64)
    for i, t in enumerate(times.tolist()):
        for chunk in centred.split(batch_size):
            corrupted = process.C(chunk, t)
            cross[i] += (chunk * corrupted).sum()
            power[i] += corrupted.square().sum()
    return cross, power


def _moments_in_basis(
    process: CorruptionProcess, form: DiagonalForm, centred: Tensor, times: Tensor
) -> tuple[Tensor, Tensor]:
    """The same sums for an operator diagonal in a known basis: ``sum_k g_k(t) m_k`` and ``sum_k g_k(t)^2 m_k``.

    ``m_k`` is the images' summed square of coefficient ``k``: one basis change instead of
    ``grid`` applications of ``C_t`` to every image (the main job's start-up went from ~13 s to
    a fraction of a second); equal to :func:`_moments_by_applying` up to rounding (tested).
    """
    second = form.to_basis(centred).square().sum(0)  # (C, H, W)
    own_times = times if process.warp is None else process.warp(times)
    gains = form.gains(own_times, (len(times), *second.shape)).to(torch.float64)
    return (gains * second).sum((1, 2, 3)), (gains.square() * second).sum((1, 2, 3))


def _per_sample(c: Tensor) -> Tensor:
    return c[:, None, None, None]


class Preconditioning:
    """``D = mean + skip(x~) + out(F(c_in x~, t))`` with ``x~ = x_t - C_t mean``; constant-coefficient base.

    This base class with ``skip = c_skip`` constant is the ``"residual"`` (1) and ``"x0"`` (0)
    parameterisation: no mean, ``c_in = c_out = 1``.
    """

    def __init__(self, process: CorruptionProcess, c_skip: float = 1.0) -> None:
        self.process = process
        self.c_skip = float(c_skip)
        self.mean: Tensor | None = None
        self._mean_copies: DeviceCopies | None = None  # of ``mean``, made by the first call that needs it

    def centre(self, x: Tensor, t: Tensor) -> Tensor:
        """``x~ = x_t - C_t mean`` (``x_t`` itself when there is no mean)."""
        if self.mean is None:
            return x
        return x - self.process.C(self._mean_like(x).expand_as(x), t)

    def _mean_like(self, x: Tensor) -> Tensor:
        """``mean`` in ``x``'s device and dtype, copied once (the mean may be replaced, never changed in place)."""
        assert self.mean is not None
        copies = self._mean_copies
        if copies is None or copies.value is not self.mean:
            copies = self._mean_copies = DeviceCopies(self.mean)
        return copies.like(x)

    def c_in(self, x: Tensor, t: Tensor) -> Tensor:
        """Per-sample input scale ``(B,)``."""
        return torch.ones_like(t)

    def combine(self, x: Tensor, f: Tensor, t: Tensor) -> Tensor:
        """``mean + skip(x~) + out(f)`` for the centred input ``x`` and the network output ``f``."""
        d = self.c_skip * x + f if self.c_skip else f
        return d if self.mean is None else d + self._mean_like(d)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(c_skip={self.c_skip})"


class ScalarPreconditioning(Preconditioning):
    """Scalar ``c_in, c_skip, c_out`` per time from :class:`DataStatistics`: any operator."""

    def __init__(self, process: CorruptionProcess, stats: DataStatistics) -> None:
        super().__init__(process)
        self.stats = stats
        self.mean = stats.mean

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(c_in, c_skip, c_out)``, each ``(B,)`` in the dtype of ``t``."""
        s2 = self.process.s(t).to(t.dtype).square()
        b, v, excess = self.stats.at(t)
        total = v + s2
        a = self.stats.variance
        return total.rsqrt(), b / total, ((excess + a * s2) / total).clamp_min(0).sqrt()

    def c_in(self, x: Tensor, t: Tensor) -> Tensor:
        return self.coefficients(t)[0]

    def combine(self, x: Tensor, f: Tensor, t: Tensor) -> Tensor:
        _, c_skip, c_out = self.coefficients(t)
        return self._mean_like(x) + _per_sample(c_skip) * x + _per_sample(c_out) * f

    def __repr__(self) -> str:
        return f"ScalarPreconditioning(variance={self.stats.variance:.4g})"


class SpectralPreconditioning(Preconditioning):
    """EDM one DCT frequency at a time: Wiener skip, per-frequency ``c_out``, scalar ``c_in``."""

    def __init__(self, process: CorruptionProcess, stats: DataStatistics) -> None:
        super().__init__(process)
        self.stats = stats
        self.mean = stats.mean
        probe = torch.zeros(1, *stats.mean.shape)
        if process.dct_gains(0.5, probe) is None:
            raise ValueError(
                f"parameterisation 'precond_dct' needs an operator diagonal in the DCT basis (blur with the dct "
                f"backend, noise, or their compositions), not {process.operator!r}; use 'precond'"
            )

    def coefficients(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(c_in (B,), c_skip (B, C, H, W), c_out (B, C, H, W))``, the last two per DCT coefficient."""
        gains = self.process.dct_gains(t, x)
        assert gains is not None  # checked at construction
        p = self.stats.spectrum_like(x)
        s2 = _per_sample(self.process.s(t).to(x.dtype).square())
        total = gains.square() * p + s2
        c_in = total.expand_as(x).flatten(1).mean(1).rsqrt()
        return c_in, gains * p / total, (p * s2 / total).sqrt()

    def c_in(self, x: Tensor, t: Tensor) -> Tensor:
        return self.coefficients(x, t)[0]

    def combine(self, x: Tensor, f: Tensor, t: Tensor) -> Tensor:
        _, c_skip, c_out = self.coefficients(x, t)
        return self._mean_like(x) + idct2(c_skip * dct2(x) + c_out * dct2(f))

    def __repr__(self) -> str:
        return f"SpectralPreconditioning(variance={self.stats.variance:.4g})"


@dataclass(frozen=True)
class ParameterisationRule:
    """A registered parameterisation: ``build(process, stats)`` gives its :class:`Preconditioning`.

    ``needs_statistics``: ``build`` needs :class:`DataStatistics` (the trainer estimates them
    once and stores them with the checkpoints).
    """

    description: str
    build: Callable[[CorruptionProcess, DataStatistics | None], Preconditioning]
    needs_statistics: bool = False


PARAMETERISATIONS: Registry[ParameterisationRule] = Registry("parameterisation")


def register_parameterisation(name: str, rule: ParameterisationRule, *, replace: bool = False) -> None:
    """Register a parameterisation by name (then ``objective.parameterisation = name`` selects it)."""
    if not isinstance(rule, ParameterisationRule):
        raise ValueError(f"a parameterisation entry is a ParameterisationRule, got {type(rule).__name__}")
    PARAMETERISATIONS.register(name, rule, replace=replace)


def _with_stats(
    cls: type[ScalarPreconditioning] | type[SpectralPreconditioning],
) -> Callable[[CorruptionProcess, DataStatistics | None], Preconditioning]:
    def build(process: CorruptionProcess, stats: DataStatistics | None) -> Preconditioning:
        assert stats is not None  # build_preconditioning checks this
        return cls(process, stats)

    return build


register_parameterisation("residual", ParameterisationRule("h = x_t + net", lambda p, s: Preconditioning(p, 1.0)))
register_parameterisation("x0", ParameterisationRule("h = net", lambda p, s: Preconditioning(p, 0.0)))
register_parameterisation(
    "precond",
    ParameterisationRule("EDM preconditioning from data statistics", _with_stats(ScalarPreconditioning), True),
)
register_parameterisation(
    "precond_dct",
    ParameterisationRule("the same per DCT frequency", _with_stats(SpectralPreconditioning), True),
)


def needs_statistics(parameterisation: str) -> bool:
    """Whether a parameterisation needs :class:`DataStatistics` (estimated from data, stored with the model)."""
    return PARAMETERISATIONS.get(parameterisation).needs_statistics


def build_preconditioning(
    parameterisation: str, process: CorruptionProcess, stats: DataStatistics | None = None
) -> Preconditioning:
    """The preconditioning of a registered parameterisation name (``residual``, ``x0``, ``precond``, ...)."""
    rule = PARAMETERISATIONS.get(parameterisation)  # an unknown name fails here, listing the known ones
    if rule.needs_statistics and stats is None:
        raise ValueError(f"parameterisation {parameterisation!r} needs data statistics (DataStatistics.estimate)")
    return rule.build(process, stats)
