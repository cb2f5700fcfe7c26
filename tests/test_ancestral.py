"""The ancestral sampler and the diagonal (spectral) forms it relies on."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from softdiff.corrupt import (
    CorruptionProcess,
    GaussianBlur,
    GeometricNoise,
    Identity,
    Mask,
    Pixelate,
    spectrum,
)
from softdiff.samplers import ancestral, get, uniform_grid
from softdiff.score import GaussianData
from softdiff.stats import frechet_distance, moments

F64 = torch.float64


@given(
    which=st.sampled_from(["dct", "mask-pixels", "mask-box", "mask-fade", "identity"]),
    h=st.integers(2, 12),
    w=st.integers(2, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_spectral_forms_rebuild_the_operator(which: str, h: int, w: int, seed: int) -> None:
    op = {
        "dct": GaussianBlur(0.01, 4.0),
        "mask-pixels": Mask("pixels", seed=3),
        "mask-box": Mask("box"),
        "mask-fade": Mask("fade", 0.7),
        "identity": Identity(),
    }[which]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 2, h, w, generator=g, dtype=F64)
    t = torch.rand(3, generator=g, dtype=F64)
    form = spectrum(op)
    assert form is not None
    assert torch.allclose(form.from_basis(form.to_basis(x)), x, atol=1e-12)
    assert torch.allclose((form.to_basis(x) ** 2).sum(), (x**2).sum())  # orthonormal
    assert torch.allclose(form.from_basis(form.gains(t, tuple(x.shape)) * form.to_basis(x)), op(x, t), atol=1e-12)


def test_operators_without_a_known_basis_have_none() -> None:
    assert spectrum(GaussianBlur(backend="kornia")) is None
    assert spectrum(Pixelate(4)) is None  # P_2 and P_3 share no eigenbasis
    process = CorruptionProcess(Pixelate(4), GeometricNoise(0.01, 0.1))
    with pytest.raises(ValueError, match="diagonal in a known basis"):
        ancestral(lambda x, t: x, process, torch.zeros(1, 1, 4, 4), uniform_grid(3))


def test_with_identity_it_is_the_ve_ancestral_sampler() -> None:
    """``x' = x0 + (s'^2/s^2)(x - x0) + (s'/s) sqrt(s^2 - s'^2) z`` (k-diffusion's ancestral step, eta = 1)."""
    data = GaussianData.random((1, 3, 3), torch.Generator().manual_seed(0))
    process, ts = CorruptionProcess(Identity(), GeometricNoise(0.02, 5.0)), uniform_grid(6)
    denoise = data.denoiser(process)
    x1 = 5.0 * torch.randn(8, 1, 3, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    out = ancestral(denoise, process, x1, ts, generator=torch.Generator().manual_seed(2))
    g, x = torch.Generator().manual_seed(2), x1
    for t, t_next in zip(ts[:-2], ts[1:-1], strict=True):
        s, s_next = float(process.s(t)), float(process.s(t_next))
        x0 = denoise(x, float(t))
        z = torch.randn(x.shape, generator=g, dtype=F64)
        x = x0 + (s_next**2 / s**2) * (x - x0) + (s_next / s) * math.sqrt(s**2 - s_next**2) * z
    assert torch.allclose(out, denoise(x, float(ts[-2])), atol=1e-10)


def test_it_samples_the_data_from_the_prior_on_the_dct_blur() -> None:
    data = GaussianData.random((1, 4, 4), torch.Generator().manual_seed(0))
    process = CorruptionProcess(GaussianBlur(0.01, 2.0), GeometricNoise(0.01, 0.1))
    _, mean, cov = data.marginal(process, 1.0)
    n = 2000
    x1 = mean + torch.randn(n, 16, generator=torch.Generator().manual_seed(1), dtype=F64) @ torch.linalg.cholesky(cov).T
    x1 = x1.reshape(n, 1, 4, 4)
    distance = {}
    for steps in (5, 100):
        out = get("ancestral")(
            data.denoiser(process), process, x1, uniform_grid(steps), generator=torch.Generator().manual_seed(2)
        )
        distance[steps] = frechet_distance(*moments(out), data.mean, data.cov)
    floor = frechet_distance(*moments(data.sample(n, torch.Generator().manual_seed(5))), data.mean, data.cov)
    assert distance[100] < distance[5] / 3
    assert distance[100] < 3 * floor + 0.01
