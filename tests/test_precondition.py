"""Preconditioning for any linear corruption: EDM's closed forms at C = I, unit-variance inputs and
targets for Gaussian data under every operator, the loss scale, the new time samplers, storage."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from softdiff.corrupt import build_process
from softdiff.corrupt.dct import dct2, idct2
from softdiff.corrupt.spectral import spectrum
from softdiff.score import (
    DataStatistics,
    Denoiser,
    GaussianData,
    LogitNormalTimes,
    LogNormalNoise,
    ScalarPreconditioning,
    SoftScoreMatching,
    SpectralPreconditioning,
    X0Regression,
    build_preconditioning,
    loss_scale,
)
from softdiff.score.precondition import _moments_by_applying, _moments_in_basis

F64 = torch.float64


def edm(sigma: Tensor, sd: float) -> tuple[Tensor, Tensor, Tensor]:
    """EDM's (c_in, c_skip, c_out), Karras et al. 2022, Table 1."""
    total = sigma**2 + sd**2
    return total.rsqrt(), sd**2 / total, sigma * sd / total.sqrt()


def white_stats(shape: tuple[int, int, int], sd: float, grid: int = 9) -> DataStatistics:
    """Statistics of zero-mean data with covariance sd^2 I under the identity operator."""
    flat = torch.full((grid,), sd**2, dtype=F64)
    zeros = torch.zeros(grid, dtype=F64)
    return DataStatistics(torch.zeros(shape, dtype=F64), sd**2, flat, flat, zeros, torch.full(shape, sd**2, dtype=F64))


@pytest.mark.parametrize("sd", [0.5, 1.3])
def test_identity_coefficients_are_edms(sd: float) -> None:
    process = build_process("noise", (4, 4), noise={"s_min": 0.002, "s_max": 80.0})
    t = torch.linspace(0, 1, 11, dtype=F64)
    sigma = process.s(t)
    scalar = ScalarPreconditioning(process, white_stats((1, 4, 4), sd))
    for got, want in zip(scalar.coefficients(t), edm(sigma, sd), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    # the per-frequency form with a white spectrum is EDM in every frequency as well
    x = torch.zeros(len(t), 1, 4, 4, dtype=F64)
    c_in, c_skip, c_out = SpectralPreconditioning(process, white_stats((1, 4, 4), sd)).coefficients(x, t)
    want_in, want_skip, want_out = edm(sigma, sd)
    torch.testing.assert_close(c_in, want_in, rtol=1e-12, atol=0)
    torch.testing.assert_close(c_skip, want_skip[:, None, None, None].expand_as(c_skip), rtol=1e-12, atol=0)
    torch.testing.assert_close(c_out, want_out[:, None, None, None].expand_as(c_out), rtol=1e-12, atol=0)


def test_estimated_identity_statistics_are_the_data_variance() -> None:
    images = torch.randn(300, 2, 3, 3, dtype=F64) * 0.7 + 0.2
    stats = DataStatistics.estimate(build_process("noise", (3, 3)), images, grid=5)
    centred = images - images.mean(0)
    a = float(centred.square().mean())
    assert stats.variance == pytest.approx(a, rel=1e-12)
    torch.testing.assert_close(stats.cross, torch.full((5,), a, dtype=F64))
    torch.testing.assert_close(stats.power, torch.full((5,), a, dtype=F64))
    assert float(stats.excess.abs().max()) < 1e-12
    torch.testing.assert_close(stats.spectrum.double(), dct2(centred).square().mean(0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("spec", ["blur", "mask", "noise"])
@pytest.mark.parametrize("levels", [None, [0.0, 0.3, 0.5, 0.9, 1.0]])
def test_moments_in_the_basis_equal_the_moments_of_the_applied_operator(spec: str, levels: list[float] | None) -> None:
    """The shortcut for diagonal operators computes the same sums as applying C_t to every image."""
    process = build_process(spec, (6, 5), levels=levels)
    form = spectrum(process.operator)
    assert form is not None
    images = torch.rand(40, 2, 6, 5, dtype=F64)
    centred = images - images.mean(0)
    times = torch.linspace(0, 1, 11, dtype=F64)
    fast = _moments_in_basis(process, form, centred, times)
    slow = _moments_by_applying(process, centred, times, batch_size=16)
    assert float(fast[0].std()) > 0 or spec == "noise"  # the check sees the operator change with t
    for got, want in zip(fast, slow, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def _target(pre, x: Tensor, x0: Tensor, t: Tensor) -> Tensor:
    """The network output F* for which the preconditioned denoiser returns x0 exactly."""
    residual = x0 - pre.combine(x, torch.zeros_like(x), t)
    if isinstance(pre, SpectralPreconditioning):
        return idct2(dct2(residual) / pre.coefficients(x, t)[2])
    return residual / pre.coefficients(t)[2][:, None, None, None]


@pytest.mark.parametrize(
    ("spec", "form"),
    [("noise", "precond"), ("blur", "precond"), ("mask", "precond"), ("blur+mask", "precond"),
     ("blur", "precond_dct"), ("noise", "precond_dct")],
)  # fmt: skip
def test_unit_variance_inputs_and_targets_for_gaussian_data(spec: str, form: str) -> None:
    """Measured: statistics from 4096 draws (as in training), variances on 10,000 fresh ones, at every t."""
    shape = (1, 5, 5)
    process = build_process(spec, shape[1:], noise={"s_min": 0.01, "s_max": 2.0})
    data = GaussianData.random(shape, torch.Generator().manual_seed(3))
    data = GaussianData(data.mean + 0.5, data.cov, shape)  # a non-zero mean, as images have
    g = torch.Generator().manual_seed(4)
    pre = build_preconditioning(form, process, DataStatistics.estimate(process, data.sample(4096, g)))
    x0 = data.sample(10_000, g)
    for t_value in (0.0, 0.2, 0.5, 0.8, 1.0):
        t = torch.full((len(x0),), t_value, dtype=F64)
        x = pre.centre(process.corrupt(x0, t, generator=g), t)
        inputs = pre.c_in(x, t)[:, None, None, None] * x
        assert float(inputs.square().mean()) == pytest.approx(1.0, abs=0.05), f"input at t={t_value}"
        assert float(_target(pre, x, x0, t).square().mean()) == pytest.approx(1.0, abs=0.05), f"target at {t_value}"


def test_spectral_skip_is_the_exact_posterior_mean_for_stationary_gaussian_data() -> None:
    """With a covariance diagonal in the DCT basis, the Wiener skip *is* E[x0 | x_t]."""
    shape = (1, 4, 4)
    spectrum = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=F64) + 0.1
    basis = idct2(torch.eye(16, dtype=F64).reshape(16, *shape)).reshape(16, 16)  # rows: DCT atoms
    cov = basis.T @ torch.diag(spectrum.flatten()) @ basis
    mean = torch.linspace(-0.5, 0.5, 16, dtype=F64)
    data = GaussianData(mean, cov, shape)
    process = build_process("blur", shape[1:])
    grid = 3
    stats = DataStatistics(mean.reshape(shape), 0.0, *(torch.zeros(grid, dtype=F64),) * 3, spectrum)
    pre = SpectralPreconditioning(process, stats)
    x_t = torch.randn(6, *shape, dtype=F64)
    t = torch.linspace(0.05, 1, 6, dtype=F64)
    linear = pre.combine(pre.centre(x_t, t), torch.zeros_like(x_t), t)
    torch.testing.assert_close(linear, data.denoiser(process)(x_t, t), rtol=1e-9, atol=1e-9)


def test_spectral_form_refuses_operators_that_are_not_dct_diagonal() -> None:
    process = build_process("blur+mask", (4, 4))
    stats = DataStatistics.estimate(process, torch.randn(8, 1, 4, 4), grid=3)
    with pytest.raises(ValueError, match="diagonal in the DCT basis"):
        SpectralPreconditioning(process, stats)
    with pytest.raises(ValueError, match="needs data statistics"):
        build_preconditioning("precond", process)


class Zero(nn.Module):
    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.zeros_like(x)


def test_loss_scale_of_x0_at_identity_is_edms_lambda() -> None:
    """L_0(t) of the x0 loss with the scalar preconditioning at C = I is c_out^2, so w = 1 / c_out^2 (EDM)."""
    process = build_process("noise", (6, 6), noise={"s_min": 0.05, "s_max": 20.0})
    images = torch.randn(4096, 1, 6, 6, dtype=F64) * 0.5
    denoiser = Denoiser(Zero(), process, "precond", stats=DataStatistics.estimate(process, images, grid=9))
    scale = loss_scale(X0Regression(process), denoiser.linear, images, grid=9, generator=torch.Generator())
    t = torch.linspace(0, 1, 9, dtype=F64)
    c_out = denoiser.precond.coefficients(t)[2]
    torch.testing.assert_close(scale(t, process.s(t)), c_out.pow(-2), rtol=0.05, atol=0)


def test_anchor_adds_the_x0_term() -> None:
    process = build_process("blur+mask", (5, 5))
    x0, noise = torch.randn(4, 1, 5, 5, dtype=F64), torch.randn(4, 1, 5, 5, dtype=F64)
    t = torch.tensor([0.1, 0.4, 0.7, 1.0], dtype=F64)

    def h(x: Tensor, t: Tensor) -> Tensor:
        return 0.3 * x - 0.1

    soft = SoftScoreMatching(process, anchor=0.0)(h, x0, t=t, noise=noise)
    x0_term = X0Regression(process)(h, x0, t=t, noise=noise)
    torch.testing.assert_close(SoftScoreMatching(process, anchor=0.25)(h, x0, t=t, noise=noise), soft + 0.25 * x0_term)
    with pytest.raises(ValueError, match="anchor"):
        SoftScoreMatching(process, anchor=-1.0)


@settings(max_examples=10)
@given(p_mean=st.floats(-2.0, 1.0), p_std=st.floats(0.3, 1.5))
def test_lognormal_noise_follows_edms_law(p_mean: float, p_std: float) -> None:
    process = build_process("noise", (4, 4), noise={"s_min": 1e-4, "s_max": 1e4})  # wide: clamping is negligible
    t = LogNormalNoise(process, p_mean, p_std)(20_000, torch.Generator().manual_seed(0), torch.device("cpu"))
    log_s = process.s(t.double()).log()
    assert float(log_s.mean()) == pytest.approx(p_mean, abs=0.05)
    assert float(log_s.std()) == pytest.approx(p_std, rel=0.05)


def test_logitnormal_times_and_refusals() -> None:
    t = LogitNormalTimes(0.5, 0.8)(20_000, torch.Generator().manual_seed(0), torch.device("cpu"))
    logit = torch.log(t / (1 - t))
    assert float(logit.mean()) == pytest.approx(0.5, abs=0.03)
    assert float(logit.std()) == pytest.approx(0.8, rel=0.05)
    with pytest.raises(ValueError, match="grows strictly"):
        LogNormalNoise(build_process("blur", (4, 4), noise={"s_min": 0.1, "s_max": 0.1}))
    with pytest.raises(ValueError, match="std > 0"):
        LogitNormalTimes(0.0, 0.0)


def test_dct_gains_reproduce_the_operators() -> None:
    x = torch.randn(3, 2, 6, 5, dtype=F64)
    t = torch.tensor([0.0, 0.4, 1.0], dtype=F64)
    for spec in ("blur", "noise", "blur+blur"):
        process = build_process(spec, (6, 5))
        torch.testing.assert_close(idct2(process.dct_gains(t, x) * dct2(x)), process.C(x, t), rtol=1e-10, atol=1e-12)
    assert build_process("blur", (6, 5), blur={"backend": "kornia"}).dct_gains(t, x) is None
    assert build_process("mask", (6, 5)).dct_gains(t, x) is None


def test_statistics_round_trip_and_refusals() -> None:
    process = build_process("blur", (4, 4))
    stats = DataStatistics.estimate(process, torch.randn(16, 1, 4, 4), grid=5)
    back = DataStatistics.from_state_dict(stats.state_dict())
    for name in ("mean", "cross", "power", "excess", "spectrum"):
        assert torch.equal(getattr(back, name), getattr(stats, name))
    assert back.variance == stats.variance and math.isfinite(back.variance)
    state = stats.state_dict()
    del state["spectrum"]
    with pytest.raises(ValueError, match="missing"):
        DataStatistics.from_state_dict(state)


def test_balanced_loss_scale_gives_any_objective_the_x0_losss_scale() -> None:
    """relative_to=x0: 1 for x0 itself; 1 + anchor for the anchored soft loss at C = I; below 1 + anchor under blur."""
    images = torch.randn(512, 1, 6, 6, dtype=F64) * 0.5
    for spec in ("noise", "blur"):
        process = build_process(spec, (6, 6))
        denoiser = Denoiser(Zero(), process, "precond", stats=DataStatistics.estimate(process, images, grid=9))

        def ratio(objective, denoiser=denoiser, process=process) -> Tensor:
            reference = X0Regression(process)
            return loss_scale(objective, denoiser.linear, images, 5, torch.Generator(), relative_to=reference).values

        torch.testing.assert_close(ratio(X0Regression(process)), torch.ones(5, dtype=F64))
        anchored = ratio(SoftScoreMatching(process, anchor=0.5))
        if spec == "noise":
            torch.testing.assert_close(anchored, torch.full((5,), 1.5, dtype=F64))
        else:  # the blur hides part of the residual from the soft term as t grows
            assert bool((anchored <= 1.5 + 1e-9).all()) and float(anchored[-1]) < 1.0 < float(anchored[0])
