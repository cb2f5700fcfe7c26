"""DDRM, DiffPIR and PiGDM: with ``C = I`` each is its paper's update (float64, dense hand-written
references of the papers' equations), each works with a blur model, and on Gaussian data each
posterior mean is held against the exact one at the tolerance it was measured to reach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from softdiff.corrupt import CorruptionProcess, GaussianBlur, GeometricNoise, Identity
from softdiff.restore import DDRM, DiffPIR, PiGDM, build_operator, degrade, paper_variance, restore, singular_form
from softdiff.samplers import GaussianPrior, SeededNoise, draw_prior, uniform_grid
from softdiff.score import GaussianData

F64 = torch.float64
SHAPE = (1, 3, 3)
D = math.prod(SHAPE)
SPECS = ["blur:sigma=0.8", "mask:fraction=0.5,seed=1", "pixelate:factor=2", "box:size=1"]

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Model:
    denoiser: object
    process: CorruptionProcess
    prior: GaussianPrior


@pytest.fixture(scope="module")
def data() -> GaussianData:
    return GaussianData.random(SHAPE, torch.Generator().manual_seed(0))


def vanilla(data: GaussianData, s_max: float = 20.0) -> Model:
    """``C = I`` with ``s_1 = 20``: the VE diffusion the papers write their updates for."""
    process = CorruptionProcess(Identity(), GeometricNoise(0.01, s_max))
    _, mean, cov = data.marginal(process, 1.0)
    evals, evecs = torch.linalg.eigh(cov - s_max**2 * torch.eye(D, dtype=F64))
    return Model(data.denoiser(process), process, GaussianPrior(mean.reshape(SHAPE), evecs, evals.clamp_min(0), s_max))


def blur_prior(data: GaussianData) -> Model:
    process = CorruptionProcess(GaussianBlur(0.01, 2.0), GeometricNoise(0.01, 1.0))
    _, mean, cov = data.marginal(process, 1.0)
    evals, evecs = torch.linalg.eigh(cov - torch.eye(D, dtype=F64))
    return Model(data.denoiser(process), process, GaussianPrior(mean.reshape(SHAPE), evecs, evals.clamp_min(0), 1.0))


def levels(model: Model, steps: int) -> list[float]:
    return [float(model.process.s(t)) for t in uniform_grid(steps).to(F64)]


def setting(data: GaussianData, model: Model, spec: str, sigma_y: float, seed: int = 4):
    # level:t=1 of a sampled-kernel blur has no diagonal form here: the dense SVD path
    kernel_blur = CorruptionProcess(GaussianBlur(0.01, 1.0, backend="kornia", border="constant"), model.process.noise)
    A = build_operator(spec, SHAPE, kernel_blur if spec.startswith("level") else None)
    x = data.sample(1, torch.Generator().manual_seed(seed))
    y = degrade(A, x, sigma_y, seed=seed)
    noise = SeededNoise(seed, [0])
    x1 = draw_prior(model.prior, noise, "cpu", F64)  # the stream's first draws, as every method starts
    return A, y, noise, x1


# ---- DDRM -------------------------------------------------------------------------------------


def ddrm_reference(a: Tensor, x: Tensor, x0: Tensor, z: Tensor, y: Tensor, sigma_y, s, s_next, eta, eta_b) -> Tensor:
    """Kawar et al. 2022, Eq. 8, one singular coordinate at a time (VE form, ``sigma_t' = s_next``)."""
    u, sv, vh = torch.linalg.svd(a)
    xb, x0b, zb, yb = vh @ x, vh @ x0, vh @ z, u.T @ y
    out = torch.empty(D, dtype=F64)
    for i in range(D):
        if sv[i] <= 1e-10 * sv.max():
            out[i] = x0b[i] + math.sqrt(1 - eta**2) * s_next * (xb[i] - x0b[i]) / s + eta * s_next * zb[i]
            continue
        ybar, nu = yb[i] / sv[i], sigma_y / sv[i]
        if s_next < nu:
            out[i] = x0b[i] + math.sqrt(1 - eta**2) * s_next * (ybar - x0b[i]) / nu + eta * s_next * zb[i]
        else:
            out[i] = (1 - eta_b) * x0b[i] + eta_b * ybar + math.sqrt(s_next**2 - nu**2 * eta_b**2) * zb[i]
    return vh.T @ out


@pytest.mark.parametrize("spec", [*SPECS, "level:t=1"])
@pytest.mark.parametrize("sigma_y, eta, eta_b", [(0.05, 0.85, 1.0), (0.3, 0.5, 0.7), (0.0, 1.0, 0.4)])
def test_ddrm_with_identity_prior_is_the_papers_update(
    data: GaussianData, spec: str, sigma_y: float, eta: float, eta_b: float
) -> None:
    """Two steps (1 -> 0.5 -> 0) through ``restore`` equal Eq. 8 then its signal part at ``s_0``."""
    model = vanilla(data)
    A, y, noise, x1 = setting(data, model, spec, sigma_y)
    kind = {"pixelate": "projection", "level": "dense"}.get(spec.split(":")[0], "diagonal")
    assert singular_form(A, SHAPE).kind == kind
    out = restore(model, DDRM(eta, eta_b, steps=2), A, y, sigma_y, seed=4).mean
    a = A.matrix(SHAPE)
    s1, s_half, s0 = levels(model, 2)
    x0 = model.denoiser(x1, torch.ones(1, dtype=F64)).flatten()
    z = noise.randn(x1.shape, dtype=F64).flatten()
    x_half = ddrm_reference(a, x1.flatten(), x0, z, y.flatten(), sigma_y, s1, s_half, eta, eta_b)
    x0 = model.denoiser(x_half.reshape(1, *SHAPE), torch.full((1,), 0.5, dtype=F64)).flatten()
    zero = torch.zeros(D, dtype=F64)
    # the signal part: Eq. 8 without its noise terms (eta = 1 and z = 0 drop them all)
    expected = ddrm_reference(a, zero, x0, zero, y.flatten(), sigma_y, 1.0, s0, 1.0, eta_b)
    assert torch.allclose(out.flatten(), expected, atol=1e-9), (out.flatten() - expected).abs().max()


def test_singular_forms_reconstruct_the_operator() -> None:
    """``A x = U diag(s) V^T x`` for the diagonal, projection and dense forms (colour images too)."""
    shape = (3, 6, 6)
    x = torch.randn(2, *shape, dtype=F64)
    kinds = {}
    for spec in ["blur:sigma=1.5", "mask:fraction=0.5", "box:size=2", "pixelate:factor=2", "pixelate:factor=2.5"]:
        A = build_operator(spec, shape)
        form = singular_form(A, shape)
        kinds[spec] = form.kind
        c = form.to_coeffs(x)
        if form.kind == "dense":  # U differs from V: check A = U S V^T through observe (U^T)
            assert torch.allclose(form.observe(A(x)), form.values * c, atol=1e-9)
        else:
            assert torch.allclose(form.from_coeffs(form.values * c), A(x), atol=1e-10)
            assert torch.allclose(form.from_coeffs(c), x, atol=1e-10)
    assert kinds == {
        "blur:sigma=1.5": "diagonal",
        "mask:fraction=0.5": "diagonal",
        "box:size=2": "diagonal",
        "pixelate:factor=2": "projection",
        "pixelate:factor=2.5": "dense",
    }


def test_ddrm_refuses_an_operator_without_an_svd_and_says_which_work() -> None:
    shape = (1, 80, 80)  # 6400 values: above the dense limit
    A = build_operator("pixelate:factor=2.5", shape)
    with pytest.raises(ValueError, match="DDRM supports blur .*use project, dps, diffpir or pigdm"):
        DDRM().form(A, shape)
    for bad in (dict(eta=1.5), dict(eta_b=-0.1), dict(eta=float("nan")), dict(steps=0)):
        with pytest.raises(ValueError):
            DDRM(**bad)


# ---- DiffPIR ------------------------------------------------------------------------------------


def diffpir_reference_vp(h: Tensor, x_vp: Tensor, x0: Tensor, y: Tensor, sigma_n, abar, abar_next, lam, zeta, z):
    """Zhu et al. 2023, Algorithm 1 (VP): data step with ``rho_t = lam sigma_n^2 / sigma_bar_t^2``, then re-noise."""
    sigma_bar2 = (1 - abar) / abar
    rho = lam * sigma_n**2 / sigma_bar2
    x0_y = torch.linalg.solve(h.T @ h + rho * torch.eye(D, dtype=F64), h.T @ y + rho * x0)
    eps = (x_vp - math.sqrt(abar) * x0_y) / math.sqrt(1 - abar)
    return math.sqrt(abar_next) * x0_y + math.sqrt(1 - abar_next) * (math.sqrt(1 - zeta) * eps + math.sqrt(zeta) * z)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("sigma_y, lam, zeta", [(0.05, 1.0, 0.3), (0.2, 7.0, 0.9)])
def test_diffpir_with_identity_prior_is_the_papers_update(
    data: GaussianData, spec: str, sigma_y: float, lam: float, zeta: float
) -> None:
    model = vanilla(data)
    A, y, noise, x1 = setting(data, model, spec, sigma_y)
    method = DiffPIR(lam, zeta, steps=2, cg_iters=4 * D, cg_tol=1e-14)
    out = restore(model, method, A, y, sigma_y, seed=4).mean
    h, yf = A.matrix(SHAPE), y.flatten()
    s1, s_half, _ = levels(model, 2)
    abar, abar_half = 1 / (1 + s1**2), 1 / (1 + s_half**2)  # VE level s <-> VP abar = 1 / (1 + s^2)
    x0 = model.denoiser(x1, torch.ones(1, dtype=F64)).flatten()
    z = noise.randn(x1.shape, dtype=F64).flatten()
    x_vp = diffpir_reference_vp(h, math.sqrt(abar) * x1.flatten(), x0, yf, sigma_y, abar, abar_half, lam, zeta, z)
    x_half = x_vp / math.sqrt(abar_half)
    x0 = model.denoiser(x_half.reshape(1, *SHAPE), torch.full((1,), 0.5, dtype=F64)).flatten()
    rho = lam * sigma_y**2 / s_half**2
    expected = torch.linalg.solve(h.T @ h + rho * torch.eye(D, dtype=F64), h.T @ yf + rho * x0)
    assert torch.allclose(out.flatten(), expected, atol=1e-8), (out.flatten() - expected).abs().max()


def test_diffpir_refuses_parameters_out_of_range() -> None:
    for bad in (dict(lam=0.0), dict(lam=float("inf")), dict(zeta=1.5), dict(zeta=-0.1), dict(steps=0)):
        with pytest.raises(ValueError):
            DiffPIR(**bad)


# ---- PiGDM --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("sampler, eta", [("euler", 0.0), ("ancestral", 1.0)])
@pytest.mark.parametrize("sigma_y", [0.0, 0.1])
def test_pigdm_with_identity_prior_is_the_papers_update(
    data: GaussianData, spec: str, sampler: str, eta: float, sigma_y: float
) -> None:
    """Song et al. 2023: ``g = J^T A^T (r_t^2 A A^T + sigma_y^2 I)^-1 (y - A x0_hat)``, the DDIM(eta) step with
    ``x0_hat + s_t^2 g`` in its x0 slot; ``J`` of the exact (affine) denoiser in closed form."""
    model = vanilla(data)
    A, y, noise, x1 = setting(data, model, spec, sigma_y)
    method = PiGDM(paper_variance(model.process), 1.0, sampler, 2, cg_iters=4 * D, cg_tol=1e-14, weighting="tweedie")
    out = restore(model, method, A, y, sigma_y, seed=4).mean
    a, yf = A.matrix(SHAPE), y.flatten()
    s, s_next, _ = levels(model, 2)
    x = x1.flatten()
    x0 = model.denoiser(x1, torch.ones(1, dtype=F64)).flatten()
    jac = data.cov @ torch.linalg.inv(data.cov + s**2 * torch.eye(D, dtype=F64))  # d x0_hat / d x_t
    r2 = s**2 / (1 + s**2)
    u = torch.linalg.pinv(r2 * a @ a.T + sigma_y**2 * torch.eye(D, dtype=F64), hermitian=True) @ (yf - a @ x0)
    g = jac.T @ a.T @ u
    c1 = eta * (s_next / s) * math.sqrt(s**2 - s_next**2)
    c2 = math.sqrt(s_next**2 - c1**2)
    z = noise.randn(x1.shape, dtype=F64).flatten() if eta else 0.0
    x_next = (x0 + s**2 * g) + c1 * z + c2 * (x - x0) / s
    expected = model.denoiser(x_next.reshape(1, *SHAPE), torch.full((1,), 0.5, dtype=F64)).flatten()
    assert torch.allclose(out.flatten(), expected, atol=1e-8), (out.flatten() - expected).abs().max()


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_pigdm_authors_weighting_is_their_released_update(data: GaussianData, spec: str, eta: float) -> None:
    """NVlabs/RED-diff ``algos/pgdm.py`` (awd=True, grad_term_weight=1, sigma_y = 0), written out in its own VP
    coordinates: ``x_s = sqrt(a_s) x0 + c1 z + c2 eps + sqrt(a_s) sqrt(a_t) d/dx_t [(A^+ y - A^+ A x0) . x0]``."""
    model = vanilla(data)
    A, y, noise, x1 = setting(data, model, spec, 0.0)
    sampler = "ancestral" if eta else "euler"
    method = PiGDM(paper_variance(model.process), 1.0, sampler, 2, cg_iters=4 * D, cg_tol=1e-14, weighting="authors")
    out = restore(model, method, A, y, 0.0, seed=4).mean
    a, yf = A.matrix(SHAPE), y.flatten()
    pinv = torch.linalg.pinv(a)
    s, s_next, _ = levels(model, 2)
    alpha_t, alpha_s = 1 / (1 + s**2), 1 / (1 + s_next**2)  # VP alpha-bar of the VE levels
    x_vp = math.sqrt(alpha_t) * x1.flatten()
    x0 = model.denoiser(x1, torch.ones(1, dtype=F64)).flatten()
    jac_vp = data.cov @ torch.linalg.inv(data.cov + s**2 * torch.eye(D, dtype=F64)) / math.sqrt(alpha_t)
    grad_term = jac_vp.T @ (pinv @ yf - pinv @ a @ x0)
    c1 = math.sqrt((1 - alpha_t / alpha_s) * (1 - alpha_s) / (1 - alpha_t)) * eta
    c2 = math.sqrt((1 - alpha_s) - c1**2)
    et = (x_vp - math.sqrt(alpha_t) * x0) / math.sqrt(1 - alpha_t)
    z = noise.randn(x1.shape, dtype=F64).flatten() if eta else 0.0
    coeff = math.sqrt(alpha_s) * math.sqrt(alpha_t)
    x_s = math.sqrt(alpha_s) * x0 + c1 * z + c2 * et + coeff * grad_term
    x_next = x_s / math.sqrt(alpha_s)  # back to VE
    expected = model.denoiser(x_next.reshape(1, *SHAPE), torch.full((1,), 0.5, dtype=F64)).flatten()
    assert torch.allclose(out.flatten(), expected, atol=1e-8), (out.flatten() - expected).abs().max()
    tweedie = PiGDM(paper_variance(model.process), 1.0, sampler, 2, cg_iters=4 * D, weighting="tweedie")
    tweedie = restore(model, tweedie, A, y, 0.0, seed=4)
    assert not torch.allclose(tweedie.mean, out, atol=1e-3)  # the two weightings differ by s_t^2 / r_t^2


def test_pigdm_min_weighting_is_the_authors_under_noise_and_tweedies_under_a_corruption(data: GaussianData) -> None:
    """Vanilla with the paper's r_t^2 = s^2 / (1 + s^2) < s^2: min is authors; with r_t^2 above every s_t^2, Tweedie."""
    model = vanilla(data)
    A, y, _, _ = setting(data, model, "mask:fraction=0.5,seed=1", 0.1)

    def mean(variance, weighting: str) -> Tensor:
        method = PiGDM(variance, 1.0, "euler", 3, cg_iters=4 * D, weighting=weighting)  # type: ignore[arg-type]
        return restore(model, method, A, y, 0.1, seed=4).mean

    paper = paper_variance(model.process)
    assert torch.equal(mean(paper, "min"), mean(paper, "authors"))
    big = lambda t: torch.full_like(t, 1e6)  # noqa: E731  r_t^2 larger than s_1^2 = 400
    assert torch.equal(mean(big, "min"), mean(big, "tweedie"))
    assert not torch.allclose(mean(big, "min"), mean(big, "authors"))


def test_pigdm_refuses_parameters_out_of_range(data: GaussianData) -> None:
    variance = paper_variance(vanilla(data).process)
    for bad in (dict(scale=float("inf")), dict(scale=-1.0), dict(sampler="dpmpp_2m")):
        with pytest.raises(ValueError):
            PiGDM(variance, **bad)


# ---- any prior, colour ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ddrm", "diffpir", "pigdm"])
def test_each_method_restores_colour_images_with_a_blur_prior(name: str) -> None:
    """Synthetic 3-channel Gaussian data, a DCT-blur model: finite samples that fit y better than the prior mean."""
    shape = (3, 4, 4)
    colour = GaussianData.random(shape, torch.Generator().manual_seed(5))
    process = CorruptionProcess(GaussianBlur(0.01, 2.0), GeometricNoise(0.01, 1.0))
    _, mean, cov = colour.marginal(process, 1.0)
    evals, evecs = torch.linalg.eigh(cov - torch.eye(colour.dim, dtype=F64))
    prior = GaussianPrior(mean.reshape(shape), evecs, evals.clamp_min(0), 1.0)
    model = Model(colour.denoiser(process), process, prior)
    method = {
        "ddrm": DDRM(steps=20),
        "diffpir": DiffPIR(steps=20),
        "pigdm": PiGDM(paper_variance(process), sampler="ancestral", steps=20),
    }[name]
    for spec in ("blur:sigma=1", "mask:fraction=0.5", "pixelate:factor=2"):
        A = build_operator(spec, shape)
        x = colour.sample(4, torch.Generator().manual_seed(1))
        y = degrade(A, x, 0.05, seed=1)
        result = restore(model, method, A, y, 0.05, samples=2)
        assert result.samples.shape == (4, 2, *shape) and bool(torch.isfinite(result.samples).all())
        prior_mean = colour.mean.reshape(1, *shape).expand_as(x)
        assert (A(result.mean) - y).norm() < (A(prior_mean) - y).norm(), spec


# ---- against the exact posterior mean (Gaussian data) -------------------------------------------


def posterior_mean(data: GaussianData, a: Tensor, y: Tensor, sigma_y: float) -> Tensor:
    gain = data.cov @ a.T @ torch.linalg.inv(a @ data.cov @ a.T + sigma_y**2 * torch.eye(D, dtype=F64))
    return data.mean + gain @ (y.flatten() - a @ data.mean)


def mean_errors(data: GaussianData, model: Model, make, samples: int = 400, steps: int = 30) -> dict[str, float]:
    """``||mean of the samples - E[x | y]|| / ||E[x | y] - m||`` per problem (one observation each)."""
    out = {}
    for spec, sigma_y in (("blur:sigma=0.8", 0.05), ("mask:fraction=0.5,seed=1", 0.1), ("pixelate:factor=2", 0.1)):
        A = build_operator(spec, SHAPE)
        x = data.sample(1, torch.Generator().manual_seed(3))
        y = degrade(A, x, sigma_y, seed=3)
        mu = posterior_mean(data, A.matrix(SHAPE), y, sigma_y)
        mean = restore(model, make(model, steps), A, y, sigma_y, samples=samples, batch_size=1).mean.flatten()
        out[spec] = float((mean - mu).norm() / (mu - data.mean).norm())
    return out


def isotropic_variance(data: GaussianData, process: CorruptionProcess):
    """``t -> tr Cov[x_0 | x_t] / D``, the r_t^2 that ``build_method`` measures, here exact."""

    def variance(t: Tensor) -> Tensor:
        values = []
        for value in t.tolist():
            c, _, cov_t = data.marginal(process, value)
            values.append(float((data.cov - data.cov @ c.T @ torch.linalg.solve(cov_t, c @ data.cov)).trace()) / D)
        return torch.tensor(values, dtype=t.dtype)

    return variance


# Relative errors of the mean measured once with these seeds (400 samples, 30 steps; worst of the three
# problems: vanilla DDRM 0.353, DiffPIR 0.383, PiGDM 0.306; blur model DDRM 0.426, DiffPIR 0.396, PiGDM
# 0.312; PiGDM with its default min(s_t^2, r_t^2) weighting: 0.480 and 0.386 with s_t^2, 0.306 and 0.335
# with r_t^2). None is exact (the prior mean scores 1): each bound is 1.3x the measured worst, so a
# regression shows.
MEASURED_BOUNDS = {
    ("vanilla", "ddrm"): 0.46,
    ("vanilla", "diffpir"): 0.50,
    ("vanilla", "pigdm"): 0.40,
    ("blur", "ddrm"): 0.55,
    ("blur", "diffpir"): 0.51,
    ("blur", "pigdm"): 0.41,
}
MAKERS = {
    "ddrm": lambda data, model, steps: DDRM(0.85, 1.0, steps),
    "diffpir": lambda data, model, steps: DiffPIR(1.0, 0.3, steps),
    "pigdm": lambda data, model, steps: PiGDM(isotropic_variance(data, model.process), 1.0, "ancestral", steps),
}


@pytest.mark.parametrize("prior, name", list(MEASURED_BOUNDS))
def test_posterior_mean_error_is_what_was_measured(data: GaussianData, prior: str, name: str) -> None:
    model = vanilla(data) if prior == "vanilla" else blur_prior(data)
    errors = mean_errors(data, model, lambda m, steps: MAKERS[name](data, m, steps))
    assert max(errors.values()) < MEASURED_BOUNDS[prior, name], errors
