"""Samplers against the exact denoiser of Gaussian data, their special cases, grids and seeding."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import Tensor

from softdiff.corrupt import (
    CorruptionConfig,
    CorruptionProcess,
    GaussianBlur,
    GeometricNoise,
    Identity,
    LinearCorruption,
    Mask,
)
from softdiff.samplers import (
    GaussianPrior,
    SeededNoise,
    Step,
    draw_prior,
    euler,
    generate,
    get,
    heun,
    level_grid,
    momentum,
    momentum_update,
    naive,
    names,
    nfe,
    time_grid,
    uniform_grid,
)
from softdiff.schedule import retime
from softdiff.score import GaussianData
from softdiff.stats import frechet_distance, moments

SHAPE = (1, 4, 4)
N = 2000
SAMPLERS = ["momentum", "naive", "euler", "heun", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde"]


def assert_close(actual: Tensor, expected: Tensor, rtol: float = 1e-7, atol: float = 1e-7) -> None:
    """``torch.testing.assert_close`` costs seconds of imports on first use; this is enough here."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    gap = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), f"max abs difference {gap:.3g}"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> GaussianData:
    return GaussianData.random(SHAPE, torch.Generator().manual_seed(0))


def blur_process() -> CorruptionProcess:
    return CorruptionProcess(GaussianBlur(0.01, 2.0), GeometricNoise(0.01, 0.1))


def exact_prior_draw(data: GaussianData, process: CorruptionProcess, n: int, seed: int) -> Tensor:
    """``x_1`` from the exact marginal ``q_1``, so only the sampler is under test."""
    _, mean, cov = data.marginal(process, 1.0)
    z = torch.randn(n, data.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (mean + z @ torch.linalg.cholesky(cov).T).reshape(n, *data.shape)


@pytest.fixture(scope="module")
def gaussian_runs(data: GaussianData) -> dict[tuple[str, int], tuple[float, float]]:
    """(Fréchet distance to N(m, S), trace of the sample covariance) by sampler and step count."""
    process = blur_process()
    x1 = exact_prior_draw(data, process, N, seed=1)
    results = {}
    for name in ["momentum", "naive", "euler", "heun"]:
        for steps in (10, 100):
            g = torch.Generator().manual_seed(2)
            out = get(name)(data.denoiser(process), process, x1, uniform_grid(steps), generator=g)
            mean, cov = moments(out)
            results[name, steps] = (frechet_distance(mean, cov, data.mean, data.cov), float(cov.trace()))
    return results


# ---- convergence on Gaussian data --------------------------------------------------


@pytest.mark.parametrize("name", ["momentum", "euler", "heun"])
def test_sampler_approaches_the_data_distribution(name: str, gaussian_runs: dict, data: GaussianData) -> None:
    coarse, fine = gaussian_runs[name, 10][0], gaussian_runs[name, 100][0]
    floor = frechet_distance(*moments(data.sample(N, torch.Generator().manual_seed(5))), data.mean, data.cov)
    assert fine < coarse / 3
    assert fine < 3 * floor + 0.01  # as close as N exact samples are, up to a small bias
    assert gaussian_runs[name, 100][1] == pytest.approx(float(data.cov.trace()), rel=0.1)


def test_naive_sampler_keeps_too_little_variance(gaussian_runs: dict, data: GaussianData) -> None:
    truth = float(data.cov.trace())
    assert gaussian_runs["naive", 100][1] < 0.6 * truth
    assert gaussian_runs["naive", 100][0] > 10 * gaussian_runs["momentum", 100][0]


# ---- special cases written out by hand ---------------------------------------------


def ve_process() -> CorruptionProcess:
    return CorruptionProcess(Identity(), GeometricNoise(0.02, 5.0))


def test_momentum_with_identity_is_the_ve_reverse_sde(data: GaussianData) -> None:
    process, ts = ve_process(), uniform_grid(8)
    x1 = exact_prior_draw(data, process, 16, seed=3)
    out = momentum(data.denoiser(process), process, x1, ts, generator=torch.Generator().manual_seed(4))

    score, g, x = data.score(process), torch.Generator().manual_seed(4), x1
    for t, t_next in zip(ts[:-2], ts[1:-1], strict=True):
        var = float(process.s(t)) ** 2 - float(process.s(t_next)) ** 2  # g(t)^2 dt of the VE SDE
        z = torch.randn(x.shape, generator=g, dtype=x.dtype)
        x = x + var * score(x, float(t)) + math.sqrt(var) * z  # Euler–Maruyama, reverse time
    expected = data.denoiser(process)(x, float(ts[-2]))  # last step: C_0 x0_hat = x0_hat
    assert_close(out, expected, rtol=1e-9, atol=1e-9)


def test_euler_and_heun_with_identity_are_edm_steps(data: GaussianData) -> None:
    process, ts = ve_process(), uniform_grid(6)
    denoise = data.denoiser(process)
    x1 = exact_prior_draw(data, process, 16, seed=3)

    def edm(second_order: bool) -> Tensor:
        x = x1
        for t, t_next in zip(ts[:-2], ts[1:-1], strict=True):
            s, s_next = float(process.s(t)), float(process.s(t_next))
            d = (x - denoise(x, float(t))) / s
            x_next = x + (s_next - s) * d
            if second_order:
                x_next = x + (s_next - s) * 0.5 * (d + (x_next - denoise(x_next, float(t_next))) / s_next)
            x = x_next
        return denoise(x, float(ts[-2]))

    assert_close(euler(denoise, process, x1, ts), edm(False), rtol=1e-9, atol=1e-9)
    assert_close(heun(denoise, process, x1, ts), edm(True), rtol=1e-9, atol=1e-9)


def zero_noise_process() -> CorruptionProcess:
    """Cold Diffusion: ``s_t = 0`` (outside the theory, so only a plain callable schedule allows it)."""
    return CorruptionProcess(GaussianBlur(0.01, 2.0), lambda t: torch.zeros_like(t))


def test_momentum_without_noise_is_cold_diffusion_update() -> None:
    process = zero_noise_process()
    g = torch.Generator().manual_seed(6)
    x, x0_hat = torch.randn(2, 3, *SHAPE, generator=g, dtype=torch.float64)
    t, t_next = torch.full((3,), 0.7, dtype=torch.float64), torch.full((3,), 0.4, dtype=torch.float64)
    step = Step(lambda *_: None, process, x, x0_hat, t, t_next, 0.0, 0.0, torch.Generator().manual_seed(7))
    cold = x - process.C(x0_hat, t) + process.C(x0_hat, t_next)
    assert_close(momentum_update(step), cold)


@pytest.mark.parametrize("name", ["momentum", "euler", "heun"])
def test_samplers_without_noise_run_the_cold_diffusion_loop(name: str) -> None:
    process, ts = zero_noise_process(), uniform_grid(5)

    def restore(x: Tensor, t: Tensor) -> Tensor:  # any denoiser; the update rule is what is tested
        return 0.5 * x + 0.1 * t[:, None, None, None]

    def cold(x: Tensor, x0_hat: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
        return x - process.C(x0_hat, float(t)) + process.C(x0_hat, float(t_next))

    x1 = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    x = x1
    for t, t_next in zip(ts[:-2], ts[1:-1], strict=True):
        x0_hat = restore(x, t.repeat(4))
        if name == "heun":  # trapezoid: the same update with the two ends' estimates averaged
            x0_hat = 0.5 * (x0_hat + restore(cold(x, x0_hat, t, t_next), t_next.repeat(4)))
        x = cold(x, x0_hat, t, t_next)
    expected = process.C(restore(x, ts[-2].repeat(4)), float(ts[-1]))
    assert_close(get(name)(restore, process, x1, ts), expected)


# ---- the contract ------------------------------------------------------------------


class CountingDenoiser:
    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner, self.calls = inner, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        assert t.shape == (x.shape[0],)
        self.calls += 1
        return self.inner(x, t)


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_denoiser_calls_match_nfe(name: str, steps: int, data: GaussianData) -> None:
    process = blur_process()
    counter = CountingDenoiser(data.denoiser(process))
    get(name)(counter, process, exact_prior_draw(data, process, 4, 0), uniform_grid(steps), generator=torch.Generator())
    assert counter.calls == nfe(name, steps)
    assert counter.calls == (2 * steps - 1 if name == "heun" else steps)  # len(ts) - 1 for first order


@pytest.mark.parametrize("name", SAMPLERS)
def test_callback_sees_every_step(name: str, data: GaussianData) -> None:
    process, ts = blur_process(), uniform_grid(6)
    seen: list[dict] = []
    x1 = exact_prior_draw(data, process, 3, 0)
    get(name)(data.denoiser(process), process, x1, ts, generator=torch.Generator(), callback=seen.append)
    assert [info["i"] for info in seen] == list(range(6))
    assert [info["t"] for info in seen] == pytest.approx(ts[:-1].tolist())
    assert all(info["x"].shape == info["x0_hat"].shape == x1.shape for info in seen)
    assert_close(seen[0]["x"], x1)


@pytest.mark.parametrize(
    "ts",
    [[0.0, 1.0], [1.0, 0.5, 0.5, 0.0], [1.2, 0.5, 0.0], [1.0, -0.1], [1.0], [], [[1.0, 0.0]], [1.0, float("nan")]],
)
def test_bad_grid_is_rejected(ts: list, data: GaussianData) -> None:
    process = blur_process()
    with pytest.raises(ValueError, match="ts must"):
        momentum(data.denoiser(process), process, torch.zeros(2, *SHAPE), torch.tensor(ts))


def test_noise_growing_as_t_falls_is_rejected(data: GaussianData) -> None:
    process = CorruptionProcess(Identity(), lambda t: 1 - t)
    with pytest.raises(ValueError, match="must not grow"):
        momentum(data.denoiser(blur_process()), process, torch.zeros(2, *SHAPE), uniform_grid(3))


def test_registry_lists_names_and_rejects_unknown() -> None:
    assert names() == sorted([*SAMPLERS, "ancestral"])  # ancestral: tests/test_ancestral.py
    assert get("momentum") is momentum and get("naive") is naive
    with pytest.raises(ValueError, match="unknown sampler 'ddpm'.*ancestral, dpmpp_2m.*euler, heun"):
        get("ddpm")


class ShiftBlend(LinearCorruption):
    """A user operator with ``forward`` only (not self-adjoint): blend each pixel with its right neighbour."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        w = 0.8 * t[:, None, None, None]
        return (1 - w) * x + w * torch.roll(x, 1, dims=-1)


@pytest.mark.parametrize("name", SAMPLERS)
def test_user_defined_operator_works_with_every_sampler(name: str, data: GaussianData) -> None:
    process = CorruptionProcess(ShiftBlend(), GeometricNoise(0.05, 0.5))
    x1 = exact_prior_draw(data, process, 1000, seed=9)
    out = get(name)(data.denoiser(process), process, x1, uniform_grid(30), generator=torch.Generator().manual_seed(10))
    assert out.shape == x1.shape and torch.isfinite(out).all()
    distance = frechet_distance(*moments(out), data.mean, data.cov)
    if name == "naive":
        assert moments(out)[1].trace() < float(data.cov.trace())
    else:
        assert distance < 0.1, distance


# ---- grids -------------------------------------------------------------------------


def test_uniform_grid_and_level_grid(tmp_path) -> None:  # noqa: ANN001
    assert_close(uniform_grid(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))
    levels = [0.0, 0.1, 0.35, 0.7, 1.0]
    expected = torch.tensor(levels[::-1], dtype=torch.float64)
    assert_close(level_grid(levels), expected)
    path = tmp_path / "levels.json"
    path.write_text(json.dumps({"t": levels}))
    assert_close(level_grid(path), expected)
    # Over the process re-timed by the same table, the uniform grid visits exactly these levels.
    warped = retime(CorruptionConfig(spec="blur"), path).build((4, 4))
    assert_close(warped.time(uniform_grid(4), torch.zeros(5, *SHAPE, dtype=torch.float64)), expected)
    # Other step counts take even steps in the warped time.
    assert level_grid(levels, steps=8)[::2].tolist() == pytest.approx(expected.tolist())
    for bad in ([0.0, 0.5, 0.4, 1.0], [0.0, 1.5]):
        with pytest.raises(ValueError):
            level_grid(bad)
    with pytest.raises(ValueError, match="steps"):
        uniform_grid(0)


# ---- seeds, the prior and generate -------------------------------------------------


def test_seeded_noise_depends_on_seed_and_index_only() -> None:
    whole = SeededNoise(3, range(6)).randn((6, 2, 2))
    parts = torch.cat([SeededNoise(3, range(0, 4)).randn((4, 2, 2)), SeededNoise(3, range(4, 6)).randn((2, 2, 2))])
    assert_close(whole, parts)
    assert not torch.allclose(whole, SeededNoise(4, range(6)).randn((6, 2, 2)))
    with pytest.raises(ValueError, match="holds 6 samples"):
        SeededNoise(3, range(6)).randn((5, 2))


@pytest.fixture(scope="module")
def fitted(data: GaussianData) -> tuple[CorruptionProcess, GaussianPrior]:
    process = CorruptionConfig(spec="blur+mask", noise={"s_max": 0.1}).build(SHAPE[1:])  # data, not noise, dominates
    return process, GaussianPrior.fit(process, data.sample(4000, torch.Generator().manual_seed(11)), rank=16)


def test_prior_draw_matches_the_exact_marginal_at_t1(data: GaussianData, fitted: tuple) -> None:
    process, prior = fitted
    x1 = draw_prior(prior, SeededNoise(0, range(4000)), "cpu", torch.float64)
    _, mean, cov = data.marginal(process, 1.0)
    assert frechet_distance(*moments(x1), mean, cov) < 0.02


@pytest.mark.parametrize("sampler", ["momentum", "heun", "dpmpp_2m_sde", "dpmpp_3m"])
def test_generate_is_invariant_to_batch_size(sampler: str, data: GaussianData, fitted: tuple) -> None:
    process, prior = fitted
    kwargs = dict(sampler=sampler, steps=5, seed=12, dtype=torch.float64)
    denoiser = data.denoiser(process)
    one_batch = generate(denoiser, process, prior, 7, batch_size=7, **kwargs)
    small_batches = generate(denoiser, process, prior, 7, batch_size=3, **kwargs)
    prefix = generate(denoiser, process, prior, 4, batch_size=2, **kwargs)
    assert_close(one_batch, small_batches, rtol=1e-10, atol=1e-10)
    assert_close(one_batch[:4], prefix, rtol=1e-10, atol=1e-10)
    other_seed = generate(denoiser, process, prior, 7, batch_size=7, **{**kwargs, "seed": 13})
    assert not torch.allclose(one_batch, other_seed)


def test_generate_takes_a_grid_by_name(data: GaussianData, fitted: tuple) -> None:
    process, prior = fitted
    denoiser = data.denoiser(process)
    named = generate(denoiser, process, prior, 3, sampler="dpmpp_2m", steps=6, grid="edm:0.3", dtype=torch.float64)
    x1 = draw_prior(prior, SeededNoise(0, range(3)), "cpu", torch.float64)
    by_hand = get("dpmpp_2m")(denoiser, process, x1, time_grid("edm:0.3", process, 6))
    assert_close(named, by_hand, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(
        named, generate(denoiser, process, prior, 3, sampler="dpmpp_2m", steps=6, dtype=torch.float64)
    )


def test_generate_trajectory(data: GaussianData, fitted: tuple) -> None:
    process, prior = fitted
    kwargs = dict(steps=4, dtype=torch.float64)
    images, path = generate(data.denoiser(process), process, prior, 5, batch_size=2, trajectory=3, **kwargs)
    assert path.x.shape == path.x0_hat.shape == (3, 4, *SHAPE)
    assert_close(path.x[:, 0], draw_prior(prior, SeededNoise(0, range(3)), "cpu", torch.float64))
    assert_close(process.C(path.x0_hat[:, -1], 0.0), images[:3])
    plain = generate(data.denoiser(process), process, prior, 5, batch_size=5, **kwargs)
    assert_close(plain, images, rtol=1e-10, atol=1e-10)


def test_generate_rejects_bad_arguments(data: GaussianData, fitted: tuple) -> None:
    process, prior = fitted
    for kwargs, message in [
        (dict(n=0), "n must"),
        (dict(batch_size=0), "batch_size"),
        (dict(sampler="ddim"), "unknown sampler"),
        (dict(grid=torch.tensor([0.5, 0.0])), "start at 1"),
        (dict(grid="cosine"), "unknown grid 'cosine'"),
    ]:
        with pytest.raises(ValueError, match=message):
            generate(data.denoiser(process), process, prior, **{"n": 2, **kwargs})


# ---- the Fréchet distance ----------------------------------------------------------


def test_frechet_distance_closed_forms() -> None:
    g = torch.Generator().manual_seed(14)
    root = torch.randn(5, 5, generator=g, dtype=torch.float64)
    cov, mean = root @ root.T + torch.eye(5, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    assert frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-9)
    # Diagonal covariances: sum of (sqrt(a) - sqrt(b))^2 plus the squared mean gap.
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 9.0])
    shift = torch.tensor([1.0, 0.0, 2.0])
    assert frechet_distance(shift, a.diag(), torch.zeros(3), b.diag()) == pytest.approx(5.0 + 2.0)
    with pytest.raises(ValueError):
        frechet_distance(mean, cov, mean[:3], cov)


def test_mask_process_samples_stay_finite(data: GaussianData) -> None:
    process = CorruptionProcess(Mask("pixels", 1.0), GeometricNoise(0.01, 0.1))
    x1 = exact_prior_draw(data, process, 64, seed=15)
    for name in SAMPLERS:
        out = get(name)(data.denoiser(process), process, x1, uniform_grid(10), generator=torch.Generator())
        assert torch.isfinite(out).all()


def test_default_sampler_follows_the_operators_declarations() -> None:
    """Chosen by kind (measured in bench/quality/defaults.py), so a user's operator gets the choice of its kind."""
    from softdiff.corrupt import GaussianBlur, Identity, LinearCorruption, Mask, MotionBlur
    from softdiff.samplers import default_sampler

    class Hide(LinearCorruption):
        hides_pixels = True

        def forward(self, x, t):
            return x

    assert default_sampler(GaussianBlur()) == default_sampler(MotionBlur()) == "naive"
    assert default_sampler(GaussianBlur(), steps=50) == "momentum"  # naive gets worse with more steps
    assert default_sampler(GaussianBlur(), steps=40) == "naive"
    assert default_sampler(MotionBlur(), steps=10) == "dpmpp_2m_sde"  # blur-like runs at 10 calls or fewer
    assert default_sampler(Mask()) == default_sampler(Hide()) == default_sampler(GaussianBlur() @ Hide())
    assert default_sampler(Mask()) == "dpmpp_2m_sde" == default_sampler(Identity())
    assert default_sampler(Identity(), steps=50) == "dpmpp_2m_sde"
