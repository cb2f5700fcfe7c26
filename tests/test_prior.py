"""The prior at t = 1: the Gaussian mixture against closed forms, and its plumbing through runs."""

from __future__ import annotations

import math

import pytest
import torch

from softdiff.corrupt import build_process
from softdiff.samplers import GaussianPrior, MixturePrior, SeededNoise, draw_prior, fit_prior, prior_from_state_dict
from softdiff.samplers.prior import _em

F64 = torch.float64


def two_clusters(n: int, seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """4x4 images = a point of a known 2-component mixture in the first two pixels' plane, plus a tiny floor."""
    g = torch.Generator().manual_seed(seed)
    truth = {
        "weights": torch.tensor([0.3, 0.7], dtype=F64),
        "centres": torch.tensor([[-2.0, 1.0], [1.5, -0.5]], dtype=F64),
        "sds": torch.tensor([[0.3, 0.2], [0.25, 0.4]], dtype=F64),
    }
    j = (torch.rand(n, generator=g, dtype=F64) > 0.3).long()
    c = truth["centres"][j] + truth["sds"][j] * torch.randn(n, 2, generator=g, dtype=F64)
    x = torch.zeros(n, 1, 4, 4, dtype=F64)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = c[:, 0], c[:, 1]
    return x, truth


def test_em_recovers_a_known_mixture() -> None:
    x, truth = two_clusters(6000)
    weights, centres, covariances = _em(x[:, 0, 0, :2], k=2, iterations=30, seed=0)
    order = centres[:, 0].argsort()
    torch.testing.assert_close(weights[order], truth["weights"], atol=0.02, rtol=0)
    torch.testing.assert_close(centres[order], truth["centres"], atol=0.03, rtol=0)
    sds = torch.diagonal(covariances[order], dim1=-2, dim2=-1).sqrt()
    torch.testing.assert_close(sds, truth["sds"], atol=0.02, rtol=0)


def test_fitted_mixture_samples_the_data_law() -> None:
    """Identity process with negligible noise (C_1 = I): samples follow the fitted two clusters."""
    process = build_process("noise", (4, 4), noise={"s_min": 1e-6, "s_max": 1e-6})
    x, truth = two_clusters(6000)
    prior = MixturePrior.fit(process, x.float(), rank=2, mixtures=2)
    samples = prior.sample(20000, generator=torch.Generator().manual_seed(1)).double()
    first = samples[:, 0, 0, 0]
    left = float((first < -0.25).double().mean())
    assert abs(left - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 20000) + 0.01
    torch.testing.assert_close(samples[first < -0.25][:, 0, 0, :2].mean(0), truth["centres"][0], atol=0.03, rtol=0)
    torch.testing.assert_close(samples[first >= -0.25][:, 0, 0, :2].mean(0), truth["centres"][1], atol=0.03, rtol=0)


def test_one_component_is_the_gaussian_prior_exactly() -> None:
    process = build_process("blur", (6, 6))
    x = torch.rand(200, 1, 6, 6)
    gaussian = GaussianPrior.fit(process, x, rank=5)
    assert isinstance(fit_prior(process, x, rank=5, mixtures=1), GaussianPrior)
    r = gaussian.latent_dim
    scales = torch.diag(gaussian.variances.sqrt())[None]
    one = MixturePrior(gaussian.mean, gaussian.components, torch.ones(1), torch.zeros(1, r), scales, gaussian.noise)
    z, eta = torch.randn(7, r + 1), torch.randn(7, 1, 6, 6)
    torch.testing.assert_close(one.sample_from(z, eta), gaussian.sample_from(z[:, :r], eta))


def test_samples_depend_only_on_their_own_stream() -> None:
    process = build_process("blur", (6, 6))
    prior = fit_prior(process, torch.rand(300, 1, 6, 6), rank=4, mixtures=3)
    assert isinstance(prior, MixturePrior) and prior.latent_dim == 5
    whole = draw_prior(prior, SeededNoise(3, range(0, 10)), "cpu", torch.float32)
    part = draw_prior(prior, SeededNoise(3, range(6, 10)), "cpu", torch.float32)
    torch.testing.assert_close(whole[6:], part)


def test_state_round_trip_and_old_gaussian_states() -> None:
    process = build_process("blur", (6, 6))
    x = torch.rand(300, 1, 6, 6)
    mixture, gaussian = fit_prior(process, x, 4, 3), fit_prior(process, x, 4, 1)
    z, eta = torch.randn(5, 5), torch.randn(5, 1, 6, 6)
    again = prior_from_state_dict(mixture.state_dict())
    assert isinstance(again, MixturePrior)
    torch.testing.assert_close(again.sample_from(z, eta), mixture.sample_from(z, eta))
    assert isinstance(prior_from_state_dict(gaussian.state_dict()), GaussianPrior)
    broken = {k: v for k, v in mixture.state_dict().items() if k != "scales"}
    with pytest.raises(ValueError, match="missing"):
        prior_from_state_dict(broken)
    state = mixture.state_dict()
    state["weights"] = state["weights"] * 2
    with pytest.raises(ValueError, match="sum to 1"):
        prior_from_state_dict(state)


def test_a_fully_hidden_image_fits_without_nans() -> None:
    """A full mask at t = 1 makes C_1 x0 = 0: the mixture degenerates to the noise, without NaNs."""
    process = build_process("mask", (6, 6))
    prior = fit_prior(process, torch.rand(100, 1, 6, 6), rank=4, mixtures=5)
    samples = prior.sample(50, generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(samples).all())
    assert float((samples / prior.noise).std()) == pytest.approx(1.0, abs=0.1)


def test_never_more_components_than_half_the_images() -> None:
    prior = fit_prior(build_process("blur", (6, 6)), torch.rand(6, 1, 6, 6), rank=4, mixtures=10)
    assert isinstance(prior, MixturePrior) and len(prior.weights) == 3
