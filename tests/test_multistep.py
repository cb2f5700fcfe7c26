"""Multistep samplers (dpmpp_2m, dpmpp_3m, dpmpp_2m_sde) and the noise-level time grids.

References are hand transcriptions of k-diffusion's ``sample_dpmpp_2m``,
``sample_dpmpp_3m_sde`` and ``sample_dpmpp_2m_sde`` (k_diffusion/sampling.py), run on
``sigmas = s(ts[:-1])`` followed by 0, which is what our driver's last step does.
"""

from __future__ import annotations

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
    LinearNoise,
    Mask,
)
from softdiff.samplers import (
    GRIDS,
    Carry,
    Step,
    edm_grid,
    first_level,
    get,
    log_noise_grid,
    momentum_update,
    noise_inverse,
    time_grid,
    uniform_grid,
)
from softdiff.samplers.core import noise_levels
from softdiff.samplers.multistep import Point, dpmpp_2m_sde_update, dpmpp_2m_update, dpmpp_3m_update
from softdiff.schedule import retime
from softdiff.score import GaussianData
from softdiff.stats import frechet_distance, moments

SHAPE = (1, 4, 4)
MULTISTEP = ["dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde"]


def assert_close(actual: Tensor, expected: Tensor, tol: float) -> None:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    gap = (actual - expected).abs().max().item()
    assert gap <= tol, f"max abs difference {gap:.3g} > {tol:.1g}"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> GaussianData:
    return GaussianData.random(SHAPE, torch.Generator().manual_seed(0))


def exact_prior_draw(data: GaussianData, process: CorruptionProcess, n: int, seed: int) -> Tensor:
    _, mean, cov = data.marginal(process, 1.0)
    z = torch.randn(n, data.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (mean + z @ torch.linalg.cholesky(cov).T).reshape(n, *data.shape)


def ve_process() -> CorruptionProcess:
    return CorruptionProcess(Identity(), GeometricNoise(0.02, 5.0))


def blur_process() -> CorruptionProcess:
    return CorruptionProcess(GaussianBlur(0.01, 3.0), GeometricNoise(0.01, 0.1))


# ---- C = I: k-diffusion, transcribed -----------------------------------------------


def k_sigmas(process: CorruptionProcess, ts: Tensor) -> Tensor:
    return torch.cat([process.s(ts[:-1]), torch.zeros(1, dtype=torch.float64)])


def k_dpmpp_2m(model, x: Tensor, sigmas: Tensor) -> Tensor:  # noqa: ANN001
    sigma_fn, t_fn = (lambda t: t.neg().exp()), (lambda sigma: sigma.log().neg())
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - t_fn(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def k_dpmpp_3m(model, x: Tensor, sigmas: Tensor, second_derivative_weight: float) -> Tensor:  # noqa: ANN001
    """``sample_dpmpp_3m_sde`` with ``eta = 0``; k-diffusion's ``phi_3 * d2`` term has weight 1, the exact one 2."""
    denoised_1 = denoised_2 = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            x = torch.exp(-h) * x + (-h).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0, d1_1 = (denoised - denoised_1) / r0, (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h.neg().expm1() / h + 1
                phi_3 = phi_2 / h - 0.5
                x = x + phi_2 * d1 - second_derivative_weight * phi_3 * d2
            elif h_1 is not None:
                r = h_1 / h
                phi_2 = h.neg().expm1() / h + 1
                x = x + phi_2 * (denoised - denoised_1) / r
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = (h if sigmas[i + 1] != 0 else None), h_1
    return x


def k_dpmpp_2m_sde(model, x: Tensor, sigmas: Tensor, generator: torch.Generator) -> Tensor:  # noqa: ANN001
    """``eta = 1``, ``solver_type = "midpoint"``, noise drawn from ``generator`` in step order."""
    old_denoised = h_last = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + noise * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt()
        old_denoised, h_last = denoised, h
    return x


def sigma_model(data: GaussianData, process: CorruptionProcess, ts: Tensor, sigmas: Tensor):
    """k-diffusion's model takes sigma; ours takes t: map each grid sigma back to its time."""
    denoise = data.denoiser(process)

    def model(x: Tensor, sigma: Tensor) -> Tensor:
        i = int((sigmas[:-1] - sigma).abs().argmin())
        return denoise(x, ts[i].repeat(x.shape[0]))

    return model


@pytest.mark.parametrize("steps", [1, 2, 3, 9])
def test_with_identity_dpmpp_2m_and_3m_are_k_diffusion(data: GaussianData, steps: int) -> None:
    process, ts = ve_process(), uniform_grid(steps)
    x1 = exact_prior_draw(data, process, 16, seed=1)
    sigmas = k_sigmas(process, ts)
    model = sigma_model(data, process, ts, sigmas)
    denoise = data.denoiser(process)
    assert_close(get("dpmpp_2m")(denoise, process, x1, ts), k_dpmpp_2m(model, x1, sigmas), 1e-10)
    assert_close(get("dpmpp_3m")(denoise, process, x1, ts), k_dpmpp_3m(model, x1, sigmas, 2.0), 1e-10)
    if steps >= 4:  # from the third step on, k-diffusion's half-weighted second derivative differs
        assert (get("dpmpp_3m")(denoise, process, x1, ts) - k_dpmpp_3m(model, x1, sigmas, 1.0)).abs().max() > 1e-4


def test_with_identity_dpmpp_2m_sde_is_k_diffusion(data: GaussianData) -> None:
    process, ts = ve_process(), uniform_grid(7)
    x1 = exact_prior_draw(data, process, 16, seed=1)
    sigmas = k_sigmas(process, ts)
    model = sigma_model(data, process, ts, sigmas)
    out = get("dpmpp_2m_sde")(data.denoiser(process), process, x1, ts, generator=torch.Generator().manual_seed(5))
    assert_close(out, k_dpmpp_2m_sde(model, x1, sigmas, torch.Generator().manual_seed(5)), 1e-10)


# ---- order of accuracy -------------------------------------------------------------


def constant_noise_process() -> CorruptionProcess:
    return CorruptionProcess(GaussianBlur(0.01, 3.0), lambda t: torch.full_like(t, 0.05))


ORDER_PROCESSES = {
    "identity": ve_process,
    "blur": blur_process,
    "blur, constant noise": constant_noise_process,
    "blur, linear noise": lambda: CorruptionProcess(GaussianBlur(0.01, 3.0), LinearNoise(0.01, 0.3)),
}


_PATHS: dict[str, ExactPath] = {}


def exact_path(data: GaussianData, kind: str) -> ExactPath:
    """One fine solve per process for the whole module (they take seconds each)."""
    if kind not in _PATHS:
        _PATHS[kind] = ExactPath(data, ORDER_PROCESSES[kind]())
    return _PATHS[kind]


class ExactPath:
    """The flow's solution through a few exact-prior samples, on a fine grid from 1 to 0.5."""

    FINE = 1280  # points a + j h of every coarse grid below fall on this grid

    def __init__(self, data: GaussianData, process: CorruptionProcess) -> None:
        self.data, self.process, self.denoise = data, process, data.denoiser(process)
        fine = torch.cat([uniform_grid(self.FINE, t_min=0.5), torch.zeros(1, dtype=torch.float64)])
        self.path: dict[int, Tensor] = {}
        x1 = exact_prior_draw(data, process, 12, seed=2)
        get("dpmpp_3m")(
            self.denoise, process, x1, fine, callback=lambda info: self.path.__setitem__(info["i"], info["x"])
        )

    def x(self, t: float) -> Tensor:
        j = round((1 - t) * 2 * self.FINE)
        assert abs(1 - j / (2 * self.FINE) - t) < 1e-12
        return self.path[j]


def solve_from_exact_history(path: ExactPath, update, depth: int, steps: int, a: float = 0.9, b: float = 0.5) -> Tensor:  # noqa: ANN001
    """Run ``update`` over ``steps`` even steps from ``a`` to ``b``, its history taken from the exact path."""
    h = (a - b) / steps
    times = [a + 2 * h, a + h] + uniform_grid(steps, t_max=a, t_min=b).tolist()
    levels = noise_levels(path.process, torch.tensor(times, dtype=torch.float64))
    n = path.x(a).shape[0]

    def denoised(t: float) -> Tensor:
        return path.denoise(path.x(t), torch.full((n,), t, dtype=torch.float64))

    state = tuple(Point(times[1 - k], levels[1 - k], denoised(times[1 - k])) for k in range(depth))
    x = path.x(a)
    for i in range(2, len(times) - 1):
        t, t_next = torch.full((n,), times[i], dtype=torch.float64), torch.full((n,), times[i + 1], dtype=torch.float64)
        out = update(
            Step(path.denoise, path.process, x, path.denoise(x, t), t, t_next, levels[i], levels[i + 1], None, state)
        )
        x, state = out.x, out.state
    return x


def observed_order(errors: list[float]) -> list[float]:
    return [math.log2(coarse / fine) for coarse, fine in zip(errors, errors[1:], strict=False)]


@pytest.mark.parametrize("kind", list(ORDER_PROCESSES))
def test_update_rules_converge_at_their_order(kind: str, data: GaussianData) -> None:
    """With exact history, 2M is second order and 3M third order, for the identity and for blur alike."""
    path = exact_path(data, kind)
    reference = path.x(0.5)
    for update, depth, order in [(dpmpp_2m_update, 1, 2), (dpmpp_3m_update, 2, 3)]:
        errors = [
            (solve_from_exact_history(path, update, depth, k) - reference).pow(2).mean().sqrt().item()
            for k in (16, 32, 64)
        ]
        slopes = observed_order(errors)
        assert min(slopes) > order - 0.5 and slopes[-1] > order - 0.25, (kind, order, errors, slopes)


def test_k_diffusion_3m_weight_is_only_second_order(data: GaussianData) -> None:
    """The reason dpmpp_3m doubles k-diffusion's second-derivative term: with C = I and exact
    history, k-diffusion's own weight converges at order 2, the exact weight at order 3."""

    def k_update(step: Step):  # noqa: ANN202
        history = step.state or ()
        (p1, p2) = history
        lam = [-math.log(s) for s in (step.s_next, step.s, p1.s, p2.s)]
        h, h_1, h_2 = lam[0] - lam[1], lam[1] - lam[2], lam[2] - lam[3]
        r0, r1 = h_1 / h, h_2 / h
        d1_0, d1_1 = (step.x0_hat - p1.x0_hat) / r0, (p1.x0_hat - p2.x0_hat) / r1
        d1, d2 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1), (d1_0 - d1_1) / (r0 + r1)
        phi_2 = math.expm1(-h) / h + 1
        x = math.exp(-h) * step.x - math.expm1(-h) * step.x0_hat + phi_2 * d1 - (phi_2 / h - 0.5) * d2
        return Carry(x, (Point(float(step.t[0]), step.s, step.x0_hat), p1))

    path = exact_path(data, "identity")
    reference = path.x(0.5)
    errors = [
        (solve_from_exact_history(path, k_update, 2, k) - reference).pow(2).mean().sqrt().item() for k in (16, 32, 64)
    ]
    assert observed_order(errors)[-1] < 2.4, errors


@pytest.mark.parametrize("name", ["dpmpp_2m", "dpmpp_3m"])
def test_whole_sampler_error_falls_at_second_order_on_blur(name: str, data: GaussianData) -> None:
    """Run through the driver (first step Euler, then the history builds up): second order overall."""
    path = exact_path(data, "blur")
    reference, x_a = path.x(0.5), path.x(0.9)
    errors = []
    for k in (16, 32, 64, 128):
        seen: dict[int, Tensor] = {}
        grid = torch.cat([uniform_grid(k, t_max=0.9, t_min=0.5), torch.zeros(1, dtype=torch.float64)])
        get(name)(
            path.denoise,
            path.process,
            x_a,
            grid,
            callback=lambda info, seen=seen: seen.__setitem__(info["i"], info["x"]),
        )
        errors.append((seen[k] - reference).pow(2).mean().sqrt().item())
    slopes = observed_order(errors)
    assert min(slopes) > 1.4 and slopes[-1] > 1.75, (errors, slopes)


# ---- the Gaussian bench's claims ---------------------------------------------------


def test_multistep_beats_momentum_at_a_fifth_of_the_calls(data: GaussianData) -> None:
    """The issue's bar on the exact Gaussian bench (4x4 here, blur 0.01-3 px, noise 0.01-0.1)."""
    process = blur_process()
    x1 = exact_prior_draw(data, process, 2000, seed=3)
    denoise = data.denoiser(process)

    def distance(name: str, grid: str, steps: int) -> float:
        out = get(name)(
            denoise, process, x1, time_grid(grid, process, steps), generator=torch.Generator().manual_seed(4)
        )
        return frechet_distance(*moments(out), data.mean, data.cov)

    assert distance("dpmpp_2m", "uniform", 20) <= distance("momentum", "uniform", 100)
    assert distance("dpmpp_2m", "edm:0.4", 10) <= distance("momentum", "uniform", 50)


# ---- edge cases and the contract ---------------------------------------------------


def noise_vanishing_midway() -> CorruptionProcess:
    """``s_t = 0.2 max(t - 0.5, 0)``: positive noise, then none (Cold Diffusion below t = 0.5)."""
    return CorruptionProcess(GaussianBlur(0.01, 2.0), lambda t: 0.2 * (t - 0.5).clamp_min(0))


@pytest.mark.parametrize("name", MULTISTEP)
@pytest.mark.parametrize("make", [constant_noise_process, noise_vanishing_midway], ids=["constant", "vanishing"])
def test_constant_and_vanishing_noise_give_finite_updates(name: str, make, data: GaussianData) -> None:  # noqa: ANN001
    process = make()

    def restore(x: Tensor, t: Tensor) -> Tensor:  # any denoiser: only the update rule is under test
        return 0.5 * x + 0.1 * t[:, None, None, None]

    x1 = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    out = get(name)(restore, process, x1, uniform_grid(9), generator=torch.Generator().manual_seed(9))
    assert torch.isfinite(out).all()


def test_dpmpp_2m_with_constant_noise_is_adams_bashforth_in_t() -> None:
    """No noise change: ``x' = x + (C' - C) D`` with ``D`` extrapolated linearly in t (the clock falls back to -t)."""
    process, ts = constant_noise_process(), torch.tensor([1.0, 0.8, 0.7, 0.45, 0.0], dtype=torch.float64)

    def restore(x: Tensor, t: Tensor) -> Tensor:
        return 0.5 * x + 0.1 * t[:, None, None, None]

    x1 = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x, previous = x1, None
    for i in range(len(ts) - 2):
        t, t_next = ts[i].repeat(3), ts[i + 1].repeat(3)
        d = restore(x, t)
        d_eff = d if previous is None else d + (ts[i] - ts[i + 1]) / (2 * (ts[i - 1] - ts[i])) * (d - previous)
        x, previous = x + process.C(d_eff, t_next) - process.C(d_eff, t), d
    expected = process.C(restore(x, ts[-2].repeat(3)), ts[-1].repeat(3))
    assert_close(get("dpmpp_2m")(restore, process, x1, ts), expected, 1e-12)


def test_dpmpp_2m_sde_first_step_is_momentum_with_exact_noise(data: GaussianData) -> None:
    """Same drift as momentum; noise ``s' sqrt(1 - r^2)``, i.e. r times momentum's ``sqrt(s^2 - s'^2)``."""
    process = blur_process()
    x = exact_prior_draw(data, process, 5, seed=6)
    t, t_next = torch.full((5,), 0.8, dtype=torch.float64), torch.full((5,), 0.6, dtype=torch.float64)
    s, s_next = float(process.s(t[0])), float(process.s(t_next[0]))
    x0_hat = data.denoiser(process)(x, t)

    def step(seed: int) -> Step:
        return Step(None, process, x, x0_hat, t, t_next, s, s_next, torch.Generator().manual_seed(seed))

    r = s_next / s
    drift = process.C(x0_hat, t_next) + r**2 * (x - process.C(x0_hat, t))
    assert_close(dpmpp_2m_sde_update(step(7)).x - drift, r * (momentum_update(step(7)) - drift), 1e-12)


def test_state_lives_in_the_driver_loop_only(data: GaussianData) -> None:
    """A rule's Carry state comes back at the next step, starts as None, and never outlives a call."""
    from softdiff.samplers import sampler_from_update

    seen: list[object] = []

    def counting(step: Step) -> Carry:
        seen.append(step.state)
        return Carry(step.x, (step.state or 0) + 1)

    sampler = sampler_from_update(counting, "counting", "test")
    process, x1 = blur_process(), exact_prior_draw(data, blur_process(), 2, seed=1)
    sampler(data.denoiser(process), process, x1, uniform_grid(4))
    sampler(data.denoiser(process), process, x1, uniform_grid(4))
    assert seen == [None, 1, 2, None, 1, 2]  # 3 updates per call (the last step only denoises)
    first = get("dpmpp_3m")(data.denoiser(process), process, x1, uniform_grid(6))
    assert torch.equal(first, get("dpmpp_3m")(data.denoiser(process), process, x1, uniform_grid(6)))


class ShiftBlend(LinearCorruption):
    """A user operator with ``forward`` only: blend each pixel with its right neighbour."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        w = 0.8 * t[:, None, None, None]
        return (1 - w) * x + w * torch.roll(x, 1, dims=-1)


OPERATORS = {
    "identity": lambda: CorruptionProcess(Identity(), GeometricNoise(0.05, 3.0)),
    "blur": blur_process,
    "mask": lambda: CorruptionProcess(Mask("pixels", 1.0), GeometricNoise(0.01, 0.1)),
    "blur+mask": lambda: CorruptionConfig(spec="blur+mask").build(SHAPE[1:]),
    "user-defined": lambda: CorruptionProcess(ShiftBlend(), GeometricNoise(0.05, 0.5)),
}


@pytest.mark.parametrize("operator", list(OPERATORS))
@pytest.mark.parametrize("name", MULTISTEP)
def test_every_operator_works(name: str, operator: str, data: GaussianData) -> None:
    """Smooth operators: the samples reach the data. Hard masks make the flow itself lose variance
    (every sampler does: a pixel carries no information until it is revealed), so there the
    multistep samplers must do as well as the first-order sampler they extend."""
    process = OPERATORS[operator]()
    x1 = exact_prior_draw(data, process, 1500, seed=9)

    def distance(sampler: str) -> float:
        g = torch.Generator().manual_seed(10)
        out = get(sampler)(data.denoiser(process), process, x1, uniform_grid(40), generator=g)
        assert torch.isfinite(out).all()
        return frechet_distance(*moments(out), data.mean, data.cov)

    if "mask" in operator:
        assert distance(name) < 1.05 * distance("momentum" if name.endswith("sde") else "euler")
    else:
        floor = frechet_distance(*moments(data.sample(1500, torch.Generator().manual_seed(5))), data.mean, data.cov)
        assert distance(name) < 2 * floor + 0.02


# ---- grids -------------------------------------------------------------------------


def test_noise_grids_place_the_levels_they_promise() -> None:
    process = CorruptionProcess(GaussianBlur(0.01, 2.0), LinearNoise(0.02, 0.5))  # s linear, so grids differ from t
    s = lambda ts: process.s(ts).tolist()  # noqa: E731
    log_levels = s(log_noise_grid(process, 6))
    assert observed_spacing(log_levels, math.log) == pytest.approx([math.log(0.5 / 0.02) / 6] * 6, rel=1e-9)
    edm = s(edm_grid(process, 6, rho=7.0))
    ramp = [i / 6 for i in range(7)]
    expected = [(0.5 ** (1 / 7) + u * (0.02 ** (1 / 7) - 0.5 ** (1 / 7))) ** 7 for u in ramp]
    assert edm == pytest.approx(expected, rel=1e-9)
    # For geometric noise, even steps in log s are even steps in t.
    geometric = blur_process()
    assert log_noise_grid(geometric, 5).tolist() == pytest.approx(uniform_grid(5).tolist(), abs=1e-12)


def observed_spacing(values: list[float], fn) -> list[float]:  # noqa: ANN001
    return [fn(a) - fn(b) for a, b in zip(values, values[1:], strict=False)]


def test_noise_inverse_takes_the_earliest_time_of_a_flat_stretch() -> None:
    process = CorruptionProcess(Identity(), lambda t: torch.clamp(t, 0.3, 0.7))  # flat below 0.3 and above 0.7
    found = noise_inverse(process, [0.3, 0.5, 0.7, 0.9]).tolist()
    assert found == pytest.approx([0.0, 0.5, 0.7, 1.0], abs=1e-12)
    grid = log_noise_grid(process, 4)
    assert grid[0] == 1 and grid[-1] == 0 and bool((grid.diff() < 0).all())


def test_grid_names_and_stops(tmp_path) -> None:  # noqa: ANN001
    process = blur_process()
    assert set(GRIDS) == {"auto", "uniform", "log-noise", "edm", "levels"}
    assert time_grid("uniform", process, 4).tolist() == uniform_grid(4).tolist()
    assert time_grid("uniform:0.4", process, 5).tolist() == pytest.approx([1.0, 0.85, 0.7, 0.55, 0.4, 0.0])
    stopped = time_grid("edm:0.4", process, 5)
    assert stopped[-2] == pytest.approx(0.4) and stopped[-1] == 0 and len(stopped) == 6
    assert time_grid("edm:0.4", process, 1).tolist() == [1.0, 0.0]
    path = tmp_path / "levels.json"
    path.write_text('{"t": [0.0, 0.4, 0.7, 0.9, 1.0]}')
    warped = retime(CorruptionConfig(spec="blur"), path).build(SHAPE[1:])
    assert first_level(warped) == pytest.approx(0.25)
    assert time_grid("levels", warped, 4).tolist() == uniform_grid(4).tolist()
    assert time_grid("uniform:levels", warped, 4).tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert time_grid(str(path), process, 4).tolist() == pytest.approx([1.0, 0.9, 0.7, 0.4, 0.0])
    for bad, message in [
        ("cosine", "unknown grid 'cosine'"),
        ("levels", "needs a process trained on selected levels"),
        ("uniform:levels", "needs a process trained on selected levels"),
        ("edm:1.5", "must lie in"),
        ("edm:soon", "bad grid stop"),
    ]:
        with pytest.raises(ValueError, match=message):
            time_grid(bad, process, 4)
    constant = constant_noise_process()
    for name in ("log-noise", "edm"):
        with pytest.raises(ValueError, match="does not change"):
            time_grid(name, constant, 4)
