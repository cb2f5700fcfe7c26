"""Objectives against closed forms, the soft/DSM relation, and the exact Gaussian denoiser as the optimum."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from softdiff.corrupt import CorruptionProcess, build_process
from softdiff.score import (
    Denoiser,
    DenoisingScoreMatching,
    GaussianData,
    LevelTimes,
    SoftScoreMatching,
    X0Regression,
    build_objective,
    score_from_denoiser,
)
from softdiff.train.config import ObjectiveConfig

SHAPE = (1, 3, 3)
SPECS = ["blur", "mask", "blur+mask", "noise"]


def dense(process: CorruptionProcess, t: float) -> tuple[Tensor, float]:
    """``C_t`` as a dense matrix and ``s_t`` (float64)."""
    warped = float(process.time(t, torch.zeros(1, *SHAPE, dtype=torch.float64)))
    return process.operator.matrix(SHAPE, warped), float(process.s(torch.tensor(t, dtype=torch.float64)))


def affine(scale: float, shift: float):
    return lambda x, t: scale * x + shift


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("weighting", ["uniform", "inverse_noise"])
def test_objectives_equal_their_closed_forms(spec: str, weighting: str) -> None:
    process = build_process(spec, SHAPE[1:])
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, *SHAPE, generator=g, dtype=torch.float64)
    noise = torch.randn(4, *SHAPE, generator=g, dtype=torch.float64)
    t = torch.tensor([0.0, 0.3, 0.6, 0.9], dtype=torch.float64)
    h_fn = affine(0.7, 0.05)
    expected = {"soft": [], "dsm": [], "x0": []}
    for i in range(4):
        c, s = dense(process, float(t[i]))
        x, e = x0[i].flatten(), noise[i].flatten()
        xt = c @ x + s * e
        h = 0.7 * xt + 0.05
        w = 1.0 if weighting == "uniform" else s**-2
        d = x.numel()
        expected["soft"].append(w * ((c @ (h - x)) ** 2).sum() / d)
        score, target = (c @ h - xt) / s**2, (c @ x - xt) / s**2
        expected["dsm"].append(w * s**2 * ((score - target) ** 2).sum() / d)
        expected["x0"].append(w * ((h - x) ** 2).sum() / d)
    paper = functools.partial(SoftScoreMatching, anchor=0.0)
    for name, cls in (("soft", paper), ("dsm", DenoisingScoreMatching), ("x0", X0Regression)):
        got = cls(process, weighting)(h_fn, x0, t=t, noise=noise)
        assert got.shape == (4,)
        torch.testing.assert_close(got, torch.stack(expected[name]), rtol=1e-9, atol=1e-12)


def test_custom_weighting_and_level_times() -> None:
    process = build_process("blur", (3, 3))
    x0 = torch.randn(5, *SHAPE, dtype=torch.float64)
    base = SoftScoreMatching(process)(affine(0.5, 0.0), x0, t=torch.full((5,), 0.4), noise=torch.zeros_like(x0))
    doubled = SoftScoreMatching(process, lambda t, s: 2 * torch.ones_like(t))(
        affine(0.5, 0.0), x0, t=torch.full((5,), 0.4), noise=torch.zeros_like(x0)
    )
    torch.testing.assert_close(doubled, 2 * base)
    times = LevelTimes(4)(1000, torch.Generator().manual_seed(0), torch.device("cpu"))
    torch.testing.assert_close(times.unique(), torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    with pytest.raises(ValueError, match="unknown weighting"):
        SoftScoreMatching(process, "cubic")
    with pytest.raises(ValueError, match="unknown objective"):
        build_objective("vlb", process)


def test_objectives_sample_t_and_noise_reproducibly() -> None:
    process = build_process("blur+mask", (3, 3))
    x0 = torch.randn(6, *SHAPE)
    loss = SoftScoreMatching(process)
    a = loss(affine(0.9, 0.0), x0, torch.Generator().manual_seed(3))
    b = loss(affine(0.9, 0.0), x0, torch.Generator().manual_seed(3))
    c = loss(affine(0.9, 0.0), x0, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


class Linear(nn.Module):
    """A time-blind linear denoiser: enough to compare gradients of objectives."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(d, dtype=torch.float64) + 0.1 * torch.randn(d, d, dtype=torch.float64))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return (x.flatten(1) @ self.weight.T).reshape(x.shape)


def _grad(objective, net: nn.Module, x0: Tensor, t: float, noise: Tensor) -> Tensor:
    net.zero_grad()
    objective(net, x0, t=torch.full((x0.shape[0],), t, dtype=torch.float64), noise=noise).mean().backward()
    return net.weight.grad.clone()


@given(t=st.floats(0.0, 0.95), spec=st.sampled_from(SPECS), seed=st.integers(0, 2**16))
def test_soft_and_dsm_gradients_agree_up_to_the_stated_weighting(t: float, spec: str, seed: int) -> None:
    """At fixed t: grad DSM(w) = grad soft(w) / s_t^2, and DSM(w) == soft(w / s_t^2)."""
    torch.manual_seed(seed)
    process = build_process(spec, SHAPE[1:])
    net = Linear(9)
    x0, noise = torch.randn(8, *SHAPE, dtype=torch.float64), torch.randn(8, *SHAPE, dtype=torch.float64)
    s2 = float(process.s(torch.tensor(t, dtype=torch.float64))) ** 2
    g_soft = _grad(SoftScoreMatching(process, anchor=0.0), net, x0, t, noise)
    g_dsm = _grad(DenoisingScoreMatching(process), net, x0, t, noise)
    g_soft_inv = _grad(SoftScoreMatching(process, "inverse_noise", anchor=0.0), net, x0, t, noise)
    torch.testing.assert_close(g_dsm, g_soft / s2, rtol=1e-6, atol=1e-9 * max(1.0, g_dsm.abs().max().item()))
    torch.testing.assert_close(g_dsm, g_soft_inv, rtol=1e-6, atol=1e-9 * max(1.0, g_dsm.abs().max().item()))
    if g_soft.norm() > 1e-10:
        cosine = torch.nn.functional.cosine_similarity(g_soft.flatten(), g_dsm.flatten(), dim=0)
        assert cosine > 1 - 1e-9


@given(t=st.floats(0.0, 1.0), spec=st.sampled_from(SPECS), seed=st.integers(0, 2**16))
def test_score_of_the_exact_denoiser_is_the_analytic_score(t: float, spec: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    data = GaussianData.random(SHAPE, g)
    process = build_process(spec, SHAPE[1:])
    xt = torch.randn(5, *SHAPE, generator=g, dtype=torch.float64)
    score = score_from_denoiser(data.denoiser(process), process)(xt, torch.full((5,), t, dtype=torch.float64))
    torch.testing.assert_close(score, data.score(process)(xt, t), rtol=1e-6, atol=1e-6)


def expected_soft_loss(data: GaussianData, process: CorruptionProcess, t: float, p: Tensor, q: Tensor) -> Tensor:
    """Closed form of E ||C_t (P x_t + q - x_0)||^2 / D over x_0 ~ N(m, S) and the noise."""
    c, s = dense(process, t)
    a = p @ c - torch.eye(data.dim, dtype=torch.float64)
    bias = c @ (a @ data.mean + q)
    spread = torch.trace(c @ a @ data.cov @ a.T @ c.T) + s**2 * torch.trace(c @ p @ p.T @ c.T)
    return (bias @ bias + spread) / data.dim


def exact_linear_denoiser(data: GaussianData, process: CorruptionProcess, t: float) -> tuple[Tensor, Tensor]:
    c, mt, st_ = data.marginal(process, t)
    p = data.cov @ c.T @ torch.linalg.inv(st_)
    return p, data.mean - p @ mt


@given(t=st.floats(0.0, 0.9), spec=st.sampled_from(SPECS), seed=st.integers(0, 2**16), eps=st.floats(0.01, 0.5))
def test_soft_loss_is_minimal_at_the_exact_denoiser(t: float, spec: str, seed: int, eps: float) -> None:
    g = torch.Generator().manual_seed(seed)
    data = GaussianData.random(SHAPE, g)
    process = build_process(spec, SHAPE[1:])
    p, q = exact_linear_denoiser(data, process, t)
    best = expected_soft_loss(data, process, t, p, q)
    for _ in range(3):
        dp = torch.randn(p.shape, generator=g, dtype=torch.float64) * eps
        dq = torch.randn(q.shape, generator=g, dtype=torch.float64) * eps
        assert expected_soft_loss(data, process, t, p + dp, q + dq) >= best - 1e-12
    # and the minimum is stationary: the gradient of the expected loss vanishes there
    p_var, q_var = p.clone().requires_grad_(True), q.clone().requires_grad_(True)
    expected_soft_loss(data, process, t, p_var, q_var).backward()
    assert p_var.grad.abs().max() < 1e-8 and q_var.grad.abs().max() < 1e-8


@pytest.mark.parametrize("spec", ["blur+mask", "noise"])
def test_monte_carlo_soft_loss_matches_its_closed_form_at_the_exact_denoiser(spec: str) -> None:
    """Ties the closed form above to the SoftScoreMatching implementation, exact denoiser included."""
    g = torch.Generator().manual_seed(0)
    data = GaussianData.random(SHAPE, g)
    process = build_process(spec, SHAPE[1:])
    t, n = 0.5, 20000
    x0 = data.sample(n, g)
    losses = SoftScoreMatching(process, anchor=0.0)(
        data.denoiser(process), x0, g, t=torch.full((n,), t, dtype=torch.float64)
    )
    p, q = exact_linear_denoiser(data, process, t)
    exact = expected_soft_loss(data, process, t, p, q)
    assert abs(losses.mean() - exact) < 4 * losses.std() / math.sqrt(n)


@pytest.mark.parametrize("parameterisation", ["residual", "x0"])
def test_denoiser_parameterisations(parameterisation: str) -> None:
    process = build_process("blur", (3, 3))

    class Half(nn.Module):
        def forward(self, x: Tensor, t: Tensor) -> Tensor:
            assert t.shape == (x.shape[0],)
            return 0.5 * x

    x = torch.randn(2, *SHAPE)
    out = Denoiser(Half(), process, parameterisation)(x, 0.3)
    torch.testing.assert_close(out, 1.5 * x if parameterisation == "residual" else 0.5 * x)
    with pytest.raises(ValueError, match="unknown parameterisation"):
        Denoiser(Half(), process, "eps")  # type: ignore[arg-type]


def _anchored_weight(process: CorruptionProcess, t: float, anchor: float, anchor_at: str, nodes: int = 64) -> Tensor:
    """``W`` with ``E loss = E (h - x0)^T W (h - x0) / D``: ``C_t^T C_t + anchor * E_u C_u^T C_u``.

    ``anchor_at = "zero"``: ``u = 0`` (``C_0 = I`` up to the blur's 0.01 px). ``"below"``: ``u = t v``,
    ``v ~ U[0, 1]``, by the midpoint rule on ``nodes`` points.
    """
    c, _ = dense(process, t)
    w = c.T @ c
    us = [0.0] if anchor_at == "zero" else [t * (k + 0.5) / nodes for k in range(nodes)]
    for u in us:
        cu, _ = dense(process, u)
        w = w + anchor * cu.T @ cu / len(us)
    return w


def _expected_loss(w: Tensor, data: GaussianData, process: CorruptionProcess, t: float, p: Tensor, q: Tensor) -> Tensor:
    """Closed form of ``E (h - x0)^T W (h - x0) / D`` for ``h = P x_t + q``."""
    c, s = dense(process, t)
    a = p @ c - torch.eye(data.dim, dtype=torch.float64)
    bias = a @ data.mean + q
    return (bias @ w @ bias + torch.trace(w @ a @ data.cov @ a.T) + s**2 * torch.trace(w @ p @ p.T)) / data.dim


@pytest.mark.parametrize("anchor_at", ["zero", "below"])
@pytest.mark.parametrize("spec", ["blur", "mask", "blur+mask"])
def test_anchored_soft_loss_equals_its_closed_form(spec: str, anchor_at: str) -> None:
    """The anchor term is ``anchor * |C_u (h - x0)|^2``, with ``u = 0`` or ``u = t v`` drawn from the generator."""
    process = build_process(spec, SHAPE[1:])
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.randn(4, *SHAPE, generator=g, dtype=torch.float64), torch.randn(4, *SHAPE, dtype=torch.float64)
    t = torch.tensor([0.1, 0.4, 0.7, 1.0], dtype=torch.float64)
    got = SoftScoreMatching(process, anchor=0.5, anchor_at=anchor_at)(
        affine(0.7, 0.05), x0, torch.Generator().manual_seed(9), t=t, noise=noise
    )
    v = torch.rand(4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    u = torch.zeros(4, dtype=torch.float64) if anchor_at == "zero" else t * v
    for i in range(4):
        c, s = dense(process, float(t[i]))
        cu = torch.eye(9, dtype=torch.float64) if anchor_at == "zero" else dense(process, float(u[i]))[0]
        x = x0[i].flatten()
        r = 0.7 * (c @ x + s * noise[i].flatten()) + 0.05 - x
        expected = (((c @ r) ** 2).sum() + 0.5 * ((cu @ r) ** 2).sum()) / 9
        torch.testing.assert_close(got[i], expected, rtol=1e-9, atol=1e-12)


@given(t=st.floats(0.2, 0.9), spec=st.sampled_from(["mask", "blur+mask"]), seed=st.integers(0, 2**16))
def test_the_default_loss_keeps_the_papers_minimiser_and_makes_it_unique(t: float, spec: str, seed: int) -> None:
    """On Gaussian data the exact denoiser ``E[x0 | x_t]`` minimises the paper's loss and the default one.

    The paper's loss is flat along every ``P`` change that ``C_t`` cannot see (a hidden
    pixel's output): those are the sampler's speckle. The default (anchor 1 at the levels
    below ``t``) is strictly convex there, so its minimiser is ``E[x0 | x_t]`` and nothing else.
    """
    default = ObjectiveConfig()
    g = torch.Generator().manual_seed(seed)
    data = GaussianData.random(SHAPE, g)
    process = build_process(spec, SHAPE[1:])
    p, q = exact_linear_denoiser(data, process, t)
    paper = _anchored_weight(process, t, 0.0, "zero")
    ours = _anchored_weight(process, t, default.anchor, default.anchor_at)
    for w in (paper, ours):  # the exact denoiser is a stationary point of both: the same minimiser
        p_var, q_var = p.clone().requires_grad_(True), q.clone().requires_grad_(True)
        _expected_loss(w, data, process, t, p_var, q_var).backward()
        assert p_var.grad.abs().max() < 1e-9 and q_var.grad.abs().max() < 1e-9
    c, _ = dense(process, t)
    hidden = (c.abs().sum(0) < 1e-12).nonzero().flatten()  # pixels no output of C_t depends on
    if len(hidden):  # move the output of one pixel that C_t hides: the paper's loss does not notice
        dq = torch.zeros_like(q)
        dq[hidden[0]] = 0.3
        base_paper, base_ours = (_expected_loss(w, data, process, t, p, q) for w in (paper, ours))
        torch.testing.assert_close(_expected_loss(paper, data, process, t, p, q + dq), base_paper, rtol=0, atol=1e-12)
        assert _expected_loss(ours, data, process, t, p, q + dq) > base_ours + 1e-4
    assert torch.linalg.eigvalsh(ours).min() > 1e-6  # positive definite: the minimiser is unique
