"""Restoration against the exact Gaussian case: posteriors, level entry, DPS, baselines, seeding, specs.

For ``x ~ N(m, S)`` and ``y = A x + n`` the posterior is ``N(mu_y, S_y)`` with
``mu_y = m + S A^T (A S A^T + sigma_y^2 I)^{-1} (y - A m)``; with the exact denoiser of
``softdiff.score.GaussianData`` every method can be held against it (dense float64 math here,
never the library's conjugate gradients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from softdiff.corrupt import CorruptionProcess, GaussianBlur, GeometricNoise, Identity, Mask, Pixelate
from softdiff.restore import (
    DPS,
    STRIDE,
    Degradation,
    Isotropic,
    LevelEntry,
    Problem,
    Project,
    Tikhonov,
    Wiener,
    build_operator,
    consistency,
    degrade,
    estimate_posterior_variance,
    find_level,
    gaussian_posterior_mean,
    parse_operator,
    restore,
    tikhonov,
)
from softdiff.samplers import GaussianPrior, SeededNoise, Step, draw_prior, momentum, momentum_update, uniform_grid
from softdiff.score import GaussianData
from softdiff.stats import frechet_distance, moments

F64 = torch.float64
SHAPE = (1, 3, 3)
D = math.prod(SHAPE)
N = 2000


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> GaussianData:
    return GaussianData.random(SHAPE, torch.Generator().manual_seed(0))


@dataclass
class Model:
    """A ``DiffusionModel`` made of exact parts."""

    denoiser: object
    process: CorruptionProcess
    prior: GaussianPrior


# C_0 = I exactly (to 1e-12) for all of these, so a sampler's last step C_0 x0_hat is x0_hat
PROCESS_OPERATORS = {
    "blur": lambda: GaussianBlur(0.01, 2.0, backend="kornia", border="constant"),
    "pixelate": lambda: Pixelate(3.0),
    "mask": lambda: Mask("pixels", 0.8, seed=2),
}
OPERATOR_SPECS = ["blur:sigma=0.8", "pixelate:factor=2", "mask:fraction=0.5,seed=1", "box:size=1"]


def process_for(name: str, s_max: float = 1.0) -> CorruptionProcess:
    return CorruptionProcess(PROCESS_OPERATORS[name](), GeometricNoise(0.01, s_max))


def posterior(data: GaussianData, a: Tensor, y: Tensor, sigma_y: float) -> tuple[Tensor, Tensor]:
    """``(mu_y (B, D), S_y (D, D))`` of ``x | y`` in closed form, dense."""
    s, m = data.cov, data.mean
    gain = s @ a.T @ torch.linalg.inv(a @ s @ a.T + sigma_y**2 * torch.eye(D, dtype=F64))
    return m + (y.flatten(1) - m @ a.T) @ gain.T, s - gain @ a @ s


def posterior_given(data: GaussianData, rows: list[tuple[Tensor, Tensor, float]]) -> Tensor:
    """``E[x | o_1, ..., o_k]`` for observations ``o_i = H_i x + N(0, v_i I)`` of one image (dense)."""
    h = torch.cat([hi for hi, _, _ in rows])
    o = torch.cat([oi.flatten() for _, oi, _ in rows])
    r = torch.diag(torch.cat([torch.full((hi.shape[0],), vi, dtype=F64) for hi, _, vi in rows]))
    gain = data.cov @ h.T @ torch.linalg.inv(h @ data.cov @ h.T + r)
    return data.mean + gain @ (o - h @ data.mean)


def exact_cov(data: GaussianData, process: CorruptionProcess):
    """``(v, t) -> Cov[x_0 | x_t] v``: the covariance that makes ``Project`` exact."""

    def apply(v: Tensor, t: Tensor) -> Tensor:
        out = torch.empty_like(v).flatten(1)
        for value in t.unique():
            rows = t == value
            c, _, cov_t = data.marginal(process, float(value))
            sigma = data.cov - data.cov @ c.T @ torch.linalg.solve(cov_t, c @ data.cov)
            out[rows] = v[rows].flatten(1) @ sigma
        return out.reshape(v.shape)

    return apply


def gaussian_prior(mean: Tensor, cov: Tensor, noise: float) -> GaussianPrior:
    """``N(mean, cov + noise^2 I)`` as a ``GaussianPrior`` (full rank)."""
    evals, evecs = torch.linalg.eigh(cov)
    return GaussianPrior(mean.reshape(SHAPE), evecs, evals.clamp_min(0), noise)


def conditional_prior(
    data: GaussianData, process: CorruptionProcess, a: Tensor, y: Tensor, sigma_y: float, point: bool = False
):
    """``p(x_1 | y)`` exactly (or a point mass at its mean): the start an exact posterior sampler needs."""
    mu, sig = posterior(data, a, y, sigma_y)
    c1, _, _ = data.marginal(process, 1.0)
    s1 = float(process.s(torch.tensor(1.0, dtype=F64)))
    if point:
        return GaussianPrior((c1 @ mu[0]).reshape(SHAPE), torch.zeros(D, 1, dtype=F64), torch.zeros(1, dtype=F64), 0.0)
    return gaussian_prior(c1 @ mu[0], c1 @ sig @ c1.T, s1)


def observe(data: GaussianData, A: Degradation, sigma_y: float, n: int = 1, seed: int = 3) -> tuple[Tensor, Tensor]:
    x = data.sample(n, torch.Generator().manual_seed(seed))
    return x, degrade(A, x, sigma_y, seed=seed)


# ---- the conditional denoiser of `project` ---------------------------------------------------


@settings(max_examples=max(5, settings().max_examples // 2), deadline=None)
@given(
    process_name=st.sampled_from(list(PROCESS_OPERATORS)),
    spec=st.sampled_from(OPERATOR_SPECS),
    t=st.floats(0.05, 1.0),
    sigma_y=st.just(0.0) | st.floats(0.01, 0.5),  # noise-free, or noise the dense reference can invert
    seed=st.integers(0, 2**31 - 1),
)
def test_project_denoiser_is_the_posterior_mean_given_x_t_and_y(
    data: GaussianData, process_name: str, spec: str, t: float, sigma_y: float, seed: int
) -> None:
    """With ``S_t = Cov[x_0 | x_t]``, ``D_y(x_t, t)`` is exactly ``E[x_0 | x_t, y]`` (joint Gaussian conditioning)."""
    process = process_for(process_name)
    A = build_operator(spec, SHAPE)
    x, y = observe(data, A, sigma_y, seed=seed % 1000)
    xt = process.corrupt(x, t, generator=torch.Generator().manual_seed(seed))
    method = Project(exact_cov(data, process), cg_iters=4 * D, cg_tol=1e-15)
    got = method.conditional_denoiser(data.denoiser(process), Problem(A, y, sigma_y))(
        xt, torch.full((1,), t, dtype=F64)
    )
    c, _, _ = data.marginal(process, t)
    s_t = float(process.s(torch.tensor(t, dtype=F64)))
    # a tiny variance stands in for sigma_y = 0 so the dense inverse exists (the library's CG needs none)
    expected = posterior_given(data, [(c, xt, s_t**2), (A.matrix(SHAPE), y, max(sigma_y**2, 1e-12))])
    assert torch.allclose(got.flatten(), expected, atol=2e-6 + 1e-4 * (sigma_y == 0)), (
        (got.flatten() - expected).abs().max()
    )


def test_isotropic_project_is_a_proximal_data_step(data: GaussianData) -> None:
    """``S_t = r^2 I``: ``D + (A^T A + sigma_y^2 / r^2 I)^{-1} A^T (y - A D)`` (DDNM's projection at sigma_y = 0)."""
    process, A, sigma_y, r2 = process_for("blur"), build_operator("blur:sigma=1.2", SHAPE), 0.1, 0.3
    x, y = observe(data, A, sigma_y)
    xt = process.corrupt(x, 0.5, generator=torch.Generator().manual_seed(1))
    denoiser = data.denoiser(process)
    method = Project(Isotropic(lambda t: torch.full_like(t, r2)), cg_iters=4 * D, cg_tol=1e-15)
    got = method.conditional_denoiser(denoiser, Problem(A, y, sigma_y))(xt, torch.full((1,), 0.5, dtype=F64))
    d, a = denoiser(xt, 0.5).flatten(), A.matrix(SHAPE)
    lam = sigma_y**2 / r2
    expected = d + torch.linalg.solve(a.T @ a + lam * torch.eye(D, dtype=F64), a.T @ (y.flatten() - a @ d))
    assert torch.allclose(got.flatten(), expected, atol=1e-10)


@pytest.mark.parametrize("sampler", ["euler", "heun"])
@pytest.mark.parametrize("spec", ["pixelate:factor=2", "mask:fraction=0.5,seed=1", "blur:sigma=0.8"])
def test_project_carries_the_posterior_mean_exactly_at_any_step_count(
    data: GaussianData, spec: str, sampler: str
) -> None:
    """From ``x_1 = E[x_1 | y]``, each deterministic step maps ``E[x_t | y]`` to ``E[x_t' | y]`` (the
    conditional denoiser returns ``E[x | y]`` there), so the output is ``E[x | y]`` whatever the steps.
    By linearity this is the mean of the method's output over ``x_1 ~ p(x_1 | y)``."""
    process, sigma_y = process_for("blur"), 0.1
    A = build_operator(spec, SHAPE)
    _, y = observe(data, A, sigma_y)
    mu, _ = posterior(data, A.matrix(SHAPE), y, sigma_y)
    model = Model(
        data.denoiser(process), process, conditional_prior(data, process, A.matrix(SHAPE), y, sigma_y, point=True)
    )
    for steps in (1, 3, 10):
        method = Project(exact_cov(data, process), sampler=sampler, steps=steps, cg_iters=4 * D, cg_tol=1e-15)
        out = restore(model, method, A, y, sigma_y).mean
        assert torch.allclose(out.flatten(), mu[0], atol=1e-9), (steps, (out.flatten() - mu[0]).abs().max())


@pytest.fixture(scope="module")
def project_runs(data: GaussianData) -> dict[int, tuple[float, float]]:
    """Fréchet distance of ``N`` momentum samples to the posterior, and the floor of ``N`` exact draws."""
    process, sigma_y = process_for("blur"), 0.1
    A = build_operator("pixelate:factor=2", SHAPE)
    _, y = observe(data, A, sigma_y)
    mu, sig = posterior(data, A.matrix(SHAPE), y, sigma_y)
    model = Model(data.denoiser(process), process, conditional_prior(data, process, A.matrix(SHAPE), y, sigma_y))
    out = {}
    for steps in (5, 100):
        method = Project(exact_cov(data, process), sampler="momentum", steps=steps, cg_iters=4 * D, cg_tol=1e-15)
        samples = restore(model, method, A, y, sigma_y, samples=N, batch_size=1).samples[0]
        out[steps] = frechet_distance(*moments(samples), mu[0], sig)
    out[0] = frechet_distance(*moments(exact_draws(mu[0], sig)), mu[0], sig)
    return out


def test_project_samples_the_posterior(project_runs: dict[int, float]) -> None:
    assert project_runs[100] < project_runs[5] / 3
    assert project_runs[100] < 3 * project_runs[0] + 1e-3


# ---- level entry -------------------------------------------------------------------------------


@settings(max_examples=max(5, settings().max_examples // 2), deadline=None)
@given(
    process_name=st.sampled_from(list(PROCESS_OPERATORS)),
    tau=st.floats(0.1, 1.0),
    below=st.floats(0.0, 1.0),
    sampler=st.sampled_from(["ancestral", "momentum", "naive", "euler", "heun"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_level_entry_in_one_step_is_the_posterior_mean_given_x_tau(
    data: GaussianData, process_name: str, tau: float, below: float, sampler: str, seed: int
) -> None:
    """``A = C_tau``: one step returns ``E[x | x_tau]`` for ``x_tau = y + sqrt(s_tau^2 - sigma_y^2) z``;
    at ``sigma_y = s_tau`` (``below = 1``) that is ``E[x | y]`` itself."""
    process = process_for(process_name)
    A = build_operator(f"level:t={tau!r}", SHAPE, process)
    assert A.level == tau
    s_tau = float(process.s(torch.tensor(tau, dtype=F64)))
    sigma_y = s_tau * below
    x, y = observe(data, A, sigma_y, n=2, seed=seed % 1000)
    model = Model(data.denoiser(process), process, None)
    out = restore(model, LevelEntry(sampler, steps=1), A, y, sigma_y, seed=seed).mean
    z = SeededNoise(seed, [0, STRIDE]).randn(y.shape, dtype=F64)  # each image's first draw: the top-up
    x_tau = y + math.sqrt(s_tau**2 - sigma_y**2) * z
    c, _, _ = data.marginal(process, tau)
    for i in range(2):
        expected = posterior_given(data, [(c, x_tau[i], s_tau**2)])
        assert torch.allclose(out[i].flatten(), expected, atol=1e-9)
    if below == 1.0:
        assert torch.allclose(out.flatten(1), posterior(data, c, y, sigma_y)[0], atol=1e-9)


def exact_draws(mu: Tensor, sig: Tensor, seed: int = 9) -> Tensor:
    return (
        mu + torch.randn(N, D, generator=torch.Generator().manual_seed(seed), dtype=F64) @ torch.linalg.cholesky(sig).T
    )


@pytest.fixture(scope="module")
def level_runs(data: GaussianData):
    """Level entry on the DCT heat blur from ``x_tau = y`` (``sigma_y = s_tau``): Fréchet distance of one image's
    ``N`` samples to ``p(x | y)`` by sampler and steps, the floor of ``N`` exact draws, and ``N`` images' one sample."""
    process, tau = CorruptionProcess(GaussianBlur(0.01, 2.0), GeometricNoise(0.01, 1.0)), 0.7
    A = build_operator(f"level:t={tau}", SHAPE, process)
    sigma_y = float(process.s(torch.tensor(tau, dtype=F64)))
    model = Model(data.denoiser(process), process, None)
    _, y = observe(data, A, sigma_y)
    mu, sig = posterior(data, A.matrix(SHAPE), y, sigma_y)
    c0 = process.operator.matrix(SHAPE, 0.0)  # the samplers return C_0 x0_hat; C_0 is I to ~1e-3
    mu, sig = mu @ c0.T, c0 @ sig @ c0.T
    fd = {}
    for sampler, steps in (("ancestral", 1), ("ancestral", 100), ("momentum", 100)):
        samples = restore(model, LevelEntry(sampler, steps), A, y, sigma_y, samples=N, batch_size=1).samples[0]
        fd[sampler, steps] = frechet_distance(*moments(samples), mu[0], sig)
    fd["floor"] = frechet_distance(*moments(exact_draws(mu[0], sig)), mu[0], sig)
    x_many, y_many = observe(data, A, sigma_y, n=N, seed=11)
    result = restore(model, LevelEntry("ancestral", 100), A, y_many, sigma_y, batch_size=N)
    return fd, A, sigma_y, x_many, y_many, result


def test_level_entry_samples_the_posterior(level_runs) -> None:
    """One step gives ``E[x | y]`` (no spread); many ancestral steps give ``p(x | y)`` itself."""
    fd = level_runs[0]
    assert fd["ancestral", 100] < fd["ancestral", 1] / 50
    assert fd["ancestral", 100] < 3 * fd["floor"] + 1e-3, fd


def test_the_papers_momentum_sampler_does_not_sample_the_posterior_from_a_level(level_runs) -> None:
    """Momentum reproduces the marginals q_t, not the reverse transitions: from a fixed ``x_tau`` its spread is
    too small (measured, a known limit that makes ``ancestral`` level entry's default)."""
    fd = level_runs[0]
    assert fd["momentum", 100] > 5 * fd["ancestral", 100], fd


def test_consistency_residuals_sit_at_the_noise_level(level_runs) -> None:
    """A posterior sample is exchangeable with the true image: ``E ||A x - y||^2 / D = sigma_y^2``."""
    _, A, sigma_y, x, y, result = level_runs
    rms = lambda images: float(consistency(A, images, y).pow(2).mean().sqrt())  # noqa: E731
    assert rms(x) == pytest.approx(sigma_y, rel=0.05)  # the truth: the noise itself
    assert rms(result.samples[:, 0]) == pytest.approx(sigma_y, rel=0.05)


def test_level_is_found_for_the_processes_own_operator_and_refused_otherwise() -> None:
    process = CorruptionProcess(GaussianBlur(0.01, 6.0), GeometricNoise(0.01, 0.1))
    shape = (1, 8, 8)
    for sigma in (0.5, 2.0, 5.5):
        A = build_operator(f"blur:sigma={sigma}", shape, process)
        expected = math.log(sigma / 0.01) / math.log(6.0 / 0.01)
        assert A.level == pytest.approx(expected, abs=1e-6)
    assert build_operator("pixelate:factor=2", shape, process).level is None
    assert build_operator("blur:sigma=9", shape, process).level is None  # wider than C_1
    model = Model(None, process, None)
    with pytest.raises(ValueError, match="is not a level C_t of the model's process"):
        LevelEntry().check(model, build_operator("pixelate:factor=2", shape, process), 0.0)
    with pytest.raises(ValueError, match=r"needs sigma_y <= s_tau.*is 0.0\d+, below sigma_y = 0.5"):
        LevelEntry().check(model, build_operator("blur:sigma=2", shape, process), 0.5)
    mask = CorruptionProcess(Mask("pixels", 1.0, seed=0), GeometricNoise(0.01, 0.1))
    level = find_level(build_operator("mask:fraction=0.5", shape), mask, shape)
    assert level is not None and torch.equal(
        mask.C(torch.ones(1, *shape), level), Mask("pixels", 0.5)(torch.ones(1, *shape), 1.0)
    )


# ---- DPS ----------------------------------------------------------------------------------------


def vanilla_model(data: GaussianData) -> Model:
    """A blur process whose ``x_1`` nearly forgets the data (``s_1 = 20``), so the prior start is harmless."""
    process = CorruptionProcess(PROCESS_OPERATORS["blur"](), GeometricNoise(0.01, 20.0))
    _, mean, cov = data.marginal(process, 1.0)
    return Model(data.denoiser(process), process, gaussian_prior(mean, cov - 400 * torch.eye(D, dtype=F64), 20.0))


def test_dps_with_zero_scale_is_the_plain_sampler(data: GaussianData) -> None:
    model = vanilla_model(data)
    A = build_operator("pixelate:factor=2", SHAPE)
    _, y = observe(data, A, 0.1, n=3)
    out = restore(model, DPS(0.0, "momentum", 6), A, y, 0.1, seed=4).mean
    noise = SeededNoise(4, [i * STRIDE for i in range(3)])
    x1 = draw_prior(model.prior, noise, "cpu", F64)
    assert torch.allclose(
        out, momentum(model.denoiser, model.process, x1, uniform_grid(6), generator=noise), atol=1e-12
    )


def test_dps_step_is_the_sampler_step_minus_the_residual_norm_gradient(data: GaussianData) -> None:
    """One guided step by hand: the exact denoiser is affine, ``D(x) = b + J x``, so the gradient is
    ``-J^T A^T r / ||r||`` with ``r = y - A D(x)``."""
    model, scale = vanilla_model(data), 0.7
    A = build_operator("blur:sigma=0.8", SHAPE)
    _, y = observe(data, A, 0.05)
    ts = uniform_grid(2)
    out = restore(model, DPS(scale, "momentum", 2), A, y, 0.05, seed=5).mean

    noise = SeededNoise(5, [0])
    x = draw_prior(model.prior, noise, "cpu", F64)
    t0, t1 = torch.full((1,), float(ts[0]), dtype=F64), torch.full((1,), float(ts[1]), dtype=F64)
    c, _, cov_t = data.marginal(model.process, float(ts[0]))
    jac = data.cov @ c.T @ torch.linalg.inv(cov_t)  # d x0_hat / d x_t
    x0 = model.denoiser(x, t0)
    a = A.matrix(SHAPE)
    r = y.flatten() - a @ x0.flatten()
    grad = -(jac.T @ a.T @ r) / r.norm()
    s0, s1 = (float(model.process.s(t)) for t in ts[:2])
    step = Step(model.denoiser, model.process, x, x0, t0, t1, s0, s1, noise)
    x_next = momentum_update(step) - scale * grad.reshape(x.shape)
    expected = model.process.C(model.denoiser(x_next, t1), torch.zeros(1, dtype=F64))
    assert torch.allclose(out, expected, atol=1e-10)


def test_dps_pulls_the_mean_towards_the_posterior_but_is_not_exact(data: GaussianData) -> None:
    """DPS approximates ``p(y | x_t)`` by ``N(A D(x_t), .)`` (no ``Cov[x_0 | x_t]``): measured, not exact."""
    model = vanilla_model(data)
    A = build_operator("pixelate:factor=2", SHAPE)
    _, y = observe(data, A, 0.1)
    mu, _ = posterior(data, A.matrix(SHAPE), y, 0.1)
    mean = restore(model, DPS(0.2, "momentum", 100), A, y, 0.1, samples=500, batch_size=1).mean
    unguided = restore(model, DPS(0.0, "momentum", 100), A, y, 0.1, samples=500, batch_size=1).mean
    error, prior_error = float((mean.flatten() - mu[0]).norm()), float((unguided.flatten() - mu[0]).norm())
    assert error < 0.3 * prior_error, (error, prior_error)


# ---- linear baselines and the variance curve ----------------------------------------------------


@settings(max_examples=max(5, settings().max_examples // 2), deadline=None)
@given(
    spec=st.sampled_from(OPERATOR_SPECS), sigma_y=st.floats(0.01, 0.5), lam=st.floats(1e-3, 3), seed=st.integers(0, 999)
)
def test_linear_estimators_equal_their_closed_forms(
    data: GaussianData, spec: str, sigma_y: float, lam: float, seed: int
) -> None:
    A = build_operator(spec, SHAPE)
    _, y = observe(data, A, sigma_y, n=3, seed=seed)
    a = A.matrix(SHAPE)
    mu, _ = posterior(data, a, y, sigma_y)
    cov = lambda v: (v.flatten(1) @ data.cov).reshape(v.shape)  # noqa: E731
    got = gaussian_posterior_mean(A, y, sigma_y, data.mean.reshape(SHAPE), cov, tol=1e-14)
    assert torch.allclose(got.flatten(1), mu, atol=1e-8)
    wiener = Wiener(data.mean.reshape(SHAPE), data.cov).sample(None, Problem(A, y, sigma_y), None)
    assert torch.allclose(wiener.flatten(1), mu, atol=1e-5)  # CG to its default tolerance
    m = data.mean.reshape(SHAPE)
    expected = data.mean + (y.flatten(1) - data.mean @ a.T) @ a @ torch.linalg.inv(
        a.T @ a + lam * torch.eye(D, dtype=F64)
    )
    assert torch.allclose(tikhonov(A, y, lam, m, tol=1e-14).flatten(1), expected, atol=1e-8)
    assert torch.allclose(Tikhonov(lam, m).sample(None, Problem(A, y, sigma_y), None).flatten(1), expected, atol=1e-5)


def test_posterior_variance_curve_is_the_mean_posterior_variance(data: GaussianData) -> None:
    """For the exact denoiser the measured ``r_t^2`` is ``tr Cov[x_0 | x_t] / D``."""
    process = process_for("pixelate")
    model = Model(data.denoiser(process), process, None)
    curve = estimate_posterior_variance(model, data.sample(4000, torch.Generator().manual_seed(1)), knots=5)
    for k, t in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
        c, _, cov_t = data.marginal(process, t)
        sigma = data.cov - data.cov @ c.T @ torch.linalg.solve(cov_t, c @ data.cov)
        assert float(curve.values[k]) == pytest.approx(float(sigma.trace()) / D, rel=0.1)


# ---- seeds per image -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["level", "project", "dps"])
def test_samples_depend_on_the_image_and_seed_only(data: GaussianData, method: str) -> None:
    model = vanilla_model(data)
    spec = "level:t=0.5" if method == "level" else "mask:fraction=0.4"
    A = build_operator(spec, SHAPE, model.process)
    _, y = observe(data, A, 0.01, n=5)
    chosen = {
        "level": LevelEntry("momentum", 4),
        "project": Project(Isotropic(lambda t: torch.full_like(t, 0.2)), steps=4),
        "dps": DPS(0.5, "momentum", 4),
    }[method]
    whole = restore(model, chosen, A, y, 0.01, samples=3, batch_size=5, seed=7).samples
    split = restore(model, chosen, A, y, 0.01, samples=3, batch_size=2, seed=7).samples
    tail = restore(model, chosen, A, y[3:], 0.01, samples=2, batch_size=1, seed=7, offset=3).samples
    assert torch.allclose(whole, split, atol=1e-12)
    assert torch.allclose(whole[3:, :2], tail, atol=1e-12)  # neither N nor K changes a sample
    assert not torch.allclose(whole[:, 0], whole[:, 1])
    other = restore(model, chosen, A, y, 0.01, samples=1, seed=8).samples
    assert not torch.allclose(other[:, 0], whole[:, 0])


def test_measurement_noise_is_seeded_per_image(data: GaussianData) -> None:
    A = build_operator("blur:sigma=1", SHAPE)
    x = data.sample(4, torch.Generator().manual_seed(0))
    y = degrade(A, x, 0.3, seed=2)
    assert torch.allclose(degrade(A, x[2:], 0.3, seed=2, offset=2), y[2:], atol=1e-14)
    assert torch.allclose(degrade(A, x, 0.0), A(x))


# ---- operator specs ---------------------------------------------------------------------------


def test_specs_build_the_existing_operators_at_a_fixed_strength() -> None:
    x = torch.randn(2, 1, 28, 28, dtype=F64)
    assert torch.allclose(build_operator("blur:sigma=2", (1, 28, 28))(x), GaussianBlur(0.01, 2.0)(x, 1.0))
    assert torch.equal(build_operator("pixelate:factor=4", (1, 28, 28))(x), Pixelate(4)(x, 1.0))
    box = build_operator("box:size=12", (1, 28, 28))(torch.ones(1, 1, 28, 28))
    assert int((box == 0).sum()) == 144 and bool((box[0, 0, 8:20, 8:20] == 0).all())
    hidden = float(
        (build_operator("mask:fraction=0.5,seed=3", (1, 28, 28))(torch.ones(1, 1, 28, 28)) == 0).float().mean()
    )
    assert hidden == pytest.approx(0.5, abs=0.05)
    assert parse_operator(" mask : fraction = 0.3 ").values == {"fraction": 0.3}
    process = CorruptionProcess(Identity(), GeometricNoise(0.01, 1.0))
    assert torch.equal(build_operator("level:t=0.6", (1, 28, 28), process)(x), x)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("blurr:sigma=2", "unknown corruption 'blurr'.*restoration-only name: level"),
        ("motion:t=1.5", r"t is the operator's time, a number in \[0, 1\]"),
        ("blur:t=0.5+mask:t=0.3", "frozen at different times"),
        ("blur:sigma", "parameters of blur are key=value"),
        ("blur:sigma=two", "sigma='two' is not a number"),
        ("blur:width=2", "blur:width=2 has no parameter 'width'"),
        ("blur:sigma=-1", "sigma must be >= 0"),
        ("mask:fraction=1.5", "fraction: Input should be less than or equal to 1"),
        ("mask:fraction=0.5,seed=1.5", "seed: Input should be a valid integer"),
        ("box:size=13", "same parity"),
        ("box:size=40", "between 1 and the image side 28"),
        ("pixelate:factor=0.5", "factor: Input should be greater than or equal to 1"),
        ("level:t=0.6", "needs the model's process"),
        ("blur:sigma=nan", "must be finite"),
    ],
)
def test_bad_specs_are_one_clear_value_error(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_operator(spec, (1, 28, 28))
