"""Generic property tests every corruption operator must pass (deepinv style).

Each entry of ``OPERATORS`` builds one operator; every property runs over random shapes
(1-3 channels, odd/even, non-square sides 3..20) and random per-sample times, in float64.
The laws themselves are measured by the public :func:`softdiff.corrupt.check_operator`
(its own tests, with planted bugs, are in ``test_check_operator.py``). A new operator joins
the whole suite by adding one line to ``OPERATORS``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from _doc_examples import tutorial_namespace
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from softdiff.corrupt import (
    BlurConfig,
    Compose,
    CorruptionConfig,
    Desaturate,
    FadeToMean,
    GaussianBlur,
    Geometric,
    GeometricNoise,
    Identity,
    LevelTable,
    LinearCorruption,
    LinearNoise,
    Mask,
    MaskConfig,
    MotionBlur,
    NoiseConfig,
    Pixelate,
    Strokes,
    build_process,
    check_operator,
    compose,
    default_s_max,
    register_corruption,
)
from softdiff.schedule import read_levels, retime

F64 = torch.float64


class GainShift(LinearCorruption):
    """A user operator with forward only: shift right by one pixel (zero fill), then a fixed
    random per-pixel gain that grows with t. Its adjoint comes from ``torch.func.vjp``."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        u = torch.rand(h, w, generator=torch.Generator().manual_seed(h * 1000 + w), dtype=F64)
        gain = 1 + t[:, None, None, None] * (u.to(x) - 0.5)
        return gain * torch.nn.functional.pad(x[..., :-1], (1, 0))


@dataclass(frozen=True)
class Case:
    build: Callable[[], LinearCorruption]
    c0_tol: float | None  # bound on max |C_0 x - x| / max |x|; None: not the identity at t=0
    contraction: bool  # ||C_t x|| <= ||x|| holds for every t
    channels: tuple[int, ...] = (1, 2, 3)  # the channel counts it takes (desaturate: grey and RGB only)

    def fit(self, data: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """A drawn batch with a channel count this operator takes (grey when it takes none of the drawn)."""
        x, y, t = data
        return (x, y, t) if x.shape[1] in self.channels else (x[:, :1], y[:, :1], t)


# DCT blur at sigma_min = 0.01 is not exactly I: its gains are exp(-sigma^2 w^2 / 2) with w <= pi
# per axis, so ||C_0 - I||_2 <= 1 - exp(-0.01^2 pi^2) ~ 1e-3. Per pixel, the 1-D blur B has
# max_i sum_j |B - I|_ij < 5e-4 at any size (3..256 checked), so |C_0 x - x| <= ~1e-3 max|x|
# for the 2-D blur B_h x B_w; 2e-3 leaves a margin. (kornia at 0.01 px is I to 1e-12: exp(-5000) = 0.)
# The zoo operators are the identity at t = 0 up to rounding (motion: an FFT round trip).
DCT_C0_TOL = 2e-3

OPERATORS: dict[str, Case] = {
    "identity": Case(Identity, 0.0, True),
    "blur-dct": Case(lambda: GaussianBlur(0.01, 6.0), DCT_C0_TOL, True),
    # reflect and replicate borders weight edge pixels more than once, so they can add energy
    **{
        f"blur-kornia-{border}": Case(
            lambda border=border: GaussianBlur(0.01, 6.0, backend="kornia", border=border),
            1e-12,
            border in ("constant", "circular"),
        )
        for border in ("reflect", "replicate", "constant", "circular")
    },
    **{f"mask-{kind}": Case(lambda kind=kind: Mask(kind, seed=7), 0.0, True) for kind in ("pixels", "box", "fade")},
    "blur+mask-compose": Case(lambda: compose(Mask(), GaussianBlur()), DCT_C0_TOL, True),
    "blur+mask-matmul": Case(lambda: Mask("box") @ GaussianBlur(backend="kornia", border="reflect"), 1e-12, False),
    "chain-3": Case(
        lambda: compose(
            Mask("fade", 0.8), GaussianBlur(0.01, 4.0, backend="kornia", border="constant"), Mask("pixels", 0.5, seed=3)
        ),
        1e-12,
        True,
    ),
    "pixelate": Case(lambda: Pixelate(6.5), 0.0, True),
    "blur-level-table": Case(lambda: GaussianBlur(schedule=LevelTable([0.01, 0.5, 3.0, 4.0])), DCT_C0_TOL, True),
    # the zoo; luminance weights make desaturation no contraction (||1 w^T|| = 1.16 for BT.601)
    "desaturate": Case(Desaturate, 0.0, False, (1, 3)),
    "desaturate-half": Case(lambda: Desaturate(0.5), 0.0, False, (1, 3)),
    "fademean": Case(FadeToMean, 0.0, True),
    "fademean-per-channel": Case(lambda: FadeToMean(0.8, per_channel=True), 0.0, True),
    "strokes": Case(lambda: Strokes(seed=5), 0.0, True),
    "strokes-thin": Case(lambda: Strokes(strokes=3, brush=0.02, length=1.5, seed=1), 0.0, True),
    "motion-centred-circular": Case(lambda: MotionBlur(6.0, angle=30.0), 1e-12, True),
    "motion-trail-constant": Case(lambda: MotionBlur(9.0, angle=-100.0, centred=False, border="constant"), 1e-12, True),
    "motion-horizontal": Case(lambda: MotionBlur(4.0, angle=0.0, centred=False), 1e-12, True),
    "zoo-chain": Case(
        lambda: compose(FadeToMean(0.5), Strokes(), MotionBlur(5.0, centred=False, border="constant"), Desaturate()),
        1e-12,
        False,
        (1, 3),
    ),
    "user-gain-shift": Case(GainShift, None, False),
    "tutorial-fade-to-grey": Case(lambda: tutorial_namespace()["FadeToGrey"](), 1e-12, True),  # docs example
}

NAMES = list(OPERATORS)

# The per-operator properties run once for each of the ~18 operators, so each gets a fifth
# of the profile's examples (5 under HYPOTHESIS_PROFILE=ci): ~90 random draws per law in all.
per_operator = settings(max_examples=max(3, settings().max_examples // 5))


@st.composite
def batches(
    draw: st.DrawFn, max_side: int = 20, max_batch: int = 3, min_batch: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, y, t)``: two random float64 batches of one random shape and per-sample times."""
    b = draw(st.integers(min_batch, max_batch))
    c = draw(st.integers(1, 3))
    h, w = draw(st.integers(3, max_side)), draw(st.integers(3, max_side))
    times = draw(st.lists(st.floats(0, 1), min_size=b, max_size=b))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randn(b, c, h, w, generator=g, dtype=F64)
    y = torch.randn(b, c, h, w, generator=g, dtype=F64)
    return x, y, torch.tensor(times, dtype=F64)


def inner(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).flatten(1).sum(1)


def close(a: Tensor, b: Tensor, scale: float = 1.0) -> bool:
    return torch.allclose(a, b, rtol=1e-9, atol=1e-11 * scale)


@pytest.fixture(params=NAMES, scope="module")
def case(request: pytest.FixtureRequest) -> Case:
    return OPERATORS[request.param]


@per_operator
@given(data=batches(min_batch=2), seed=st.integers(0, 2**31 - 1))
def test_operator_laws(case: Case, data: tuple[Tensor, Tensor, Tensor], seed: int) -> None:
    """Linearity, adjointness, closed form = vjp, per-sample t and C_0 = I (check_operator), and energy.

    One test per operator (not one per law) so the suite stays fast: each map is applied once.
    """
    x, y, t = case.fit(data)
    op = case.build()
    report = check_operator(op, x=x, y=y, t=t, seed=seed, identity_tol=case.c0_tol)  # raises on a broken law
    assert report.ok and report.dtype == F64 and report.shape == tuple(x.shape)
    assert ("C_0 = I" in report.sizes()) == (case.c0_tol is not None)
    assert close(op(x, float(t[0])), op(x, t[:1].expand(len(t)))), "a float t is not broadcast to the batch"
    if case.contraction:
        cx = op(x, t)
        assert bool((cx.flatten(1).norm(dim=1) <= x.flatten(1).norm(dim=1) * (1 + 1e-12)).all()), "||C x|| > ||x||"


@pytest.mark.parametrize("border", ["reflect", "replicate"])
def test_reflect_and_replicate_borders_can_add_energy(border: str) -> None:
    """Why those two are excluded above: some edge pixel is counted twice, so ||C|| > 1."""
    op = GaussianBlur(0.01, 5.0, backend="kornia", border=border)
    assert torch.linalg.matrix_norm(op.matrix((1, 9, 12), 1.0), 2) > 1.01


@per_operator
@given(data=batches(max_side=8, max_batch=2))
def test_dtype_and_gradients_flow_through_forward_and_adjoint(case: Case, data: tuple[Tensor, Tensor, Tensor]) -> None:
    x, y, t = case.fit(data)
    op = case.build()
    for dtype in (torch.float32, torch.float64):
        xd, td = x.to(dtype), t.to(dtype)
        assert op(xd, td).dtype == dtype and op.adjoint(xd, td).dtype == dtype
        assert op(xd, 0.5).dtype == dtype and op(xd, td).device == xd.device
    # d<C x, y>/dx = C^T y and d<C^T y, x>/dy = C x: gradients are right, not just present
    xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
    inner(op(xg, t), y).sum().backward()
    inner(op.adjoint(yg, t), x).sum().backward()
    assert close(xg.grad, op.adjoint(y, t)) and close(yg.grad, op(x, t))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_laws_hold_on_the_gpu_in_float32(case: Case) -> None:
    """Every law, device preservation included, on CUDA (operators move what they hold to the input)."""
    shape = (3, 2 if 2 in case.channels else 3, 7, 6)
    report = check_operator(case.build(), shape, dtype=torch.float32, device="cuda", identity_tol=case.c0_tol)
    assert report.device.startswith("cuda")


@per_operator
@given(data=batches(max_side=6, max_batch=1))
def test_matrix_agrees_with_the_operator(case: Case, data: tuple[Tensor, Tensor, Tensor]) -> None:
    x, y, t = case.fit(data)
    op = case.build()
    m = op.matrix(x.shape[1:], float(t[0]))
    assert close(m @ x.flatten(), op(x, t).flatten())
    assert close(m.T @ y.flatten(), op.adjoint(y, t).flatten())


@settings(max_examples=max(3, settings().max_examples // 2))
@given(data=batches())
def test_composition_is_the_chain_and_its_adjoint_the_reversed_chain(data: tuple[Tensor, Tensor, Tensor]) -> None:
    x, y, t = data
    parts = [Mask("fade", 0.8), GainShift(), GaussianBlur(0.01, 4.0, backend="kornia", border="reflect"), Mask("box")]
    op = compose(*parts)
    assert isinstance(op, Compose) and isinstance(parts[0] @ parts[1], Compose)
    forward, backward = x, y
    for part in reversed(parts):  # the last operator is applied first
        forward = part(forward, t)
    for part in parts:
        backward = part.adjoint(backward, t)
    assert close(op(x, t), forward) and close(op.adjoint(y, t), backward)
    assert close((parts[0] @ parts[1])(x, t), parts[0](parts[1](x, t), t))


@pytest.mark.parametrize("kind", ["pixels", "box", "fade"])
@given(data=batches(), t1=st.floats(0, 1), t2=st.floats(0, 1), seed=st.integers(0, 1000))
def test_masks_are_nested_in_time_and_reproducible(
    kind: str, data: tuple[Tensor, Tensor, Tensor], t1: float, t2: float, seed: int
) -> None:
    x = data[0]
    t1, t2 = min(t1, t2), max(t1, t2)
    h, w = x.shape[-2:]
    weights = Mask(kind, seed=seed).weights(torch.tensor([t1, t2], dtype=F64), h, w)
    assert bool((weights[1] <= weights[0]).all())  # what is hidden at t1 stays hidden at t2
    if kind != "fade":
        assert bool(((weights == 0) | (weights == 1)).all())
    again = Mask(kind, seed=seed).weights(torch.tensor([t1, t2], dtype=F64), h, w)
    assert torch.equal(weights, again)


def test_pixel_masks_hide_the_scheduled_fraction_and_depend_on_the_seed() -> None:
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=F64)
    hidden = 1 - Mask("pixels").weights(t, 64, 64).mean(dim=(1, 2, 3))
    assert torch.allclose(hidden, t, atol=0.03)
    a, b = (Mask("pixels", seed=s).weights(t[2:3], 64, 64) for s in (0, 1))
    assert not torch.equal(a, b)


def test_dct_blur_is_the_exact_heat_blur() -> None:
    """The DCT blur of a cosine mode is the mode damped by exp(-sigma^2 w^2 / 2)."""
    n, k, sigma = 16, 3, 2.0
    i = torch.arange(n, dtype=F64)
    mode = torch.cos(math.pi * (2 * i + 1) * k / (2 * n))
    x = mode[None, None, :, None] * torch.ones(1, 1, 1, 5, dtype=F64)
    op = GaussianBlur(sigma, sigma)
    gain = math.exp(-0.5 * (sigma * math.pi * k / n) ** 2)
    assert torch.allclose(op(x, 0.5), gain * x, atol=1e-12)


def test_kornia_truncation_is_reported() -> None:
    op = GaussianBlur(0.5, 24.0, backend="kornia")
    flags = op.truncated(torch.tensor([0.0, 1.0]), 64, 64)
    assert flags.tolist() == [False, True]
    assert not bool(GaussianBlur(0.5, 24.0).truncated(1.0, 64, 64))


# --- bad input: one clear ValueError naming the problem -------------------------------------

BAD_CALLS: dict[str, tuple[Callable[[], object], str]] = {
    "3-D input": (lambda: GaussianBlur()(torch.zeros(3, 8, 8), 0.5), r"\(B, C, H, W\).*3-D"),
    "3-D input, adjoint": (lambda: Mask().adjoint(torch.zeros(8, 8), 0.5), r"\(B, C, H, W\).*2-D"),
    "t above 1": (lambda: Identity()(torch.zeros(2, 1, 4, 4), 1.5), r"t must lie in \[0, 1\]"),
    "t below 0": (lambda: Mask()(torch.zeros(2, 1, 4, 4), torch.tensor([0.2, -0.1])), r"t must lie in \[0, 1\]"),
    "t NaN": (lambda: GaussianBlur()(torch.zeros(1, 1, 4, 4), float("nan")), "NaN"),
    "t NaN in s": (lambda: build_process("blur", (4, 4)).s(torch.tensor([0.5, float("nan")])), "NaN"),
    "t batch mismatch": (
        lambda: GaussianBlur()(torch.zeros(2, 1, 4, 4), torch.rand(3)),
        r"shape \(2,\) to match the batch",
    ),
    "t 2-D": (lambda: GaussianBlur().adjoint(torch.zeros(2, 1, 4, 4), torch.rand(2, 1)), "match the batch"),
    "s_min = 0": (lambda: GeometricNoise(0.0, 1.0), "s_min must be > 0"),
    "s_min < 0": (lambda: LinearNoise(-0.1, 1.0), "s_min must be > 0"),
    "s_max < s_min": (lambda: GeometricNoise(0.5, 0.1), "s_max must be >= s_min"),
    "config s_min = 0": (lambda: NoiseConfig(s_min=0.0), "s_min"),
    "config s_max < s_min": (lambda: NoiseConfig(s_min=0.5, s_max=0.1), r"s_max \(0.1\) must be >= s_min"),
    "unknown spec": (lambda: build_process("blur+blurr", (8, 8)), "unknown corruption 'blurr'"),
    "empty spec part": (lambda: CorruptionConfig(spec="blur+"), "empty part in the spec 'blur\\+'"),
    "bad mask kind": (lambda: Mask("dots"), "unknown mask kind 'dots'"),
    "bad mask fraction": (lambda: Mask(max_fraction=1.5), "max_fraction"),
    "bad config mask kind": (lambda: MaskConfig(kind="dots"), "kind"),
    "bad blur backend": (lambda: GaussianBlur(backend="fft"), "unknown blur backend 'fft'"),
    "bad blur border": (lambda: GaussianBlur(backend="kornia", border="wrap"), "unknown border 'wrap'"),
    "dct with another border": (lambda: GaussianBlur(border="constant"), "dct backend has a fixed"),
    "blur widths reversed": (lambda: GaussianBlur(2.0, 1.0), "sigma_min <= sigma_max"),
    "config blur widths reversed": (
        lambda: BlurConfig(sigma_min=2.0, sigma_max=1.0),
        "sigma_min <= sigma_max, got 2.0, 1.0",
    ),
    "config dct border": (lambda: BlurConfig(border="constant"), "dct backend has a fixed"),
    "level table of one": (lambda: LevelTable([1.0]), "at least 2 levels"),
    "level table NaN": (lambda: LevelTable([0.0, float("nan")]), "finite"),
    "levels decreasing": (lambda: CorruptionConfig(levels=[0.0, 0.6, 0.4, 1.0]), "non-decreasing"),
    "bad registry name": (lambda: register_corruption("my blur", lambda c, s: Identity()), "identifiers"),
    "noise shape": (
        lambda: build_process("mask", (4, 4)).corrupt(torch.zeros(1, 1, 4, 4), 0.5, torch.zeros(1, 4, 4)),
        "noise has shape",
    ),
    "compose nothing": (lambda: compose(), "at least one operator"),
    "desaturate fraction": (lambda: Desaturate(1.2), "max_fraction"),
    "desaturate weights sum": (lambda: Desaturate(weights=(0.5, 0.6, 0.1)), "sum to 1"),
    "desaturate weights vs channels": (
        lambda: Desaturate(weights=(0.3, 0.6, 0.1))(torch.zeros(1, 2, 4, 4), 0.5),
        "3 weights but the images have 2 channels",
    ),
    "fademean fraction": (lambda: FadeToMean(-0.1), "max_fraction"),
    "strokes count": (lambda: Strokes(strokes=0), "at least 1"),
    "strokes brush": (lambda: Strokes(brush=0.0), "brush width"),
    "motion length": (lambda: MotionBlur(-1.0), "max_length"),
    "motion angle": (lambda: MotionBlur(angle=float("inf")), "angle"),
    "motion border": (lambda: MotionBlur(border="reflect"), "unknown border 'reflect'"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_input_raises_a_clear_value_error(name: str) -> None:
    call, message = BAD_CALLS[name]
    with pytest.raises(ValueError, match=message):
        call()


# --- schedules --------------------------------------------------------------------------------


@given(lo=st.floats(1e-3, 10), hi=st.floats(1e-3, 10))
def test_geometric_schedules_hit_their_end_points(lo: float, hi: float) -> None:
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    for schedule in (Geometric(lo, hi), GeometricNoise(min(lo, hi), max(lo, hi))):
        a, b = schedule.lo, schedule.hi
        assert torch.allclose(schedule(t), torch.tensor([a, math.sqrt(a * b), b], dtype=F64), rtol=1e-12)
    assert torch.allclose(LinearNoise(min(lo, hi), max(lo, hi))(t)[1], torch.tensor((lo + hi) / 2, dtype=F64))


@given(values=st.lists(st.floats(-5, 5), min_size=2, max_size=9), u=st.floats(0, 1))
def test_level_table_interpolates_linearly_between_levels(values: list[float], u: float) -> None:
    table = LevelTable(values)
    k = len(values)
    knots = torch.linspace(0, 1, k, dtype=F64)
    assert torch.allclose(table(knots), torch.tensor(values, dtype=F64), atol=1e-12)
    i = min(int(u * (k - 1)), k - 2)  # inside segment i: a convex mix of its two end values
    frac = u * (k - 1) - i
    expected = values[i] * (1 - frac) + values[i + 1] * frac
    assert abs(float(table(torch.tensor([u], dtype=F64))) - expected) < 1e-9


def test_level_table_reads_the_selector_format(tmp_path: Path) -> None:
    path = tmp_path / "levels.json"
    path.write_text(json.dumps({"t": [0.0, 0.2, 1.0], "sigma": [0.01, 1.0, 9.0]}))
    assert read_levels(path).times == (0.0, 0.2, 1.0)
    config = retime(CorruptionConfig(spec="blur"), path)
    assert config.levels == [0.0, 0.2, 1.0]
    warped, plain = config.build((8, 8)), CorruptionConfig(spec="blur").build((8, 8))
    x = torch.randn(1, 1, 8, 8, dtype=F64)
    assert torch.allclose(warped.C(x, 0.25), plain.C(x, 0.1))  # level 1 of 3 at t=0.5 -> source 0.2
    assert torch.allclose(warped.s(torch.tensor(0.25)), plain.s(torch.tensor(0.1)))


# --- the process ------------------------------------------------------------------------------


def test_corrupt_has_mean_c_t_x0_and_std_s_t() -> None:
    process = build_process("blur+mask", (6, 5), noise={"s_min": 0.05, "s_max": 0.8})
    n = 4000
    x0 = torch.randn(1, 2, 6, 5, dtype=F64).expand(n, -1, -1, -1)
    t = torch.full((n,), 0.6, dtype=F64)
    xt = process.corrupt(x0, t, generator=torch.Generator().manual_seed(0))
    s = float(process.s(torch.tensor(0.6, dtype=F64)))
    assert s == pytest.approx(0.05 * 16**0.6)
    assert torch.allclose(xt.mean(0), process.C(x0[:1], 0.6)[0], atol=5 * s / math.sqrt(n))
    assert torch.allclose(xt.std(0), torch.full_like(xt[0], s), rtol=0.08)
    eta = torch.randn_like(x0)
    assert torch.allclose(process.corrupt(x0, t, noise=eta), process.C(x0, t) + s * eta)


configs = st.builds(
    CorruptionConfig,
    spec=st.lists(st.sampled_from(["noise", "blur", "mask"]), min_size=1, max_size=3).map("+".join),
    blur=st.builds(
        BlurConfig,
        sigma_max=st.none() | st.floats(0.5, 8),
        backend=st.just("kornia"),
        border=st.sampled_from(["reflect", "replicate", "constant", "circular"]),
    )
    | st.builds(BlurConfig, sigma_max=st.none() | st.floats(0.5, 8), backend=st.just("dct")),
    mask=st.builds(
        MaskConfig,
        kind=st.sampled_from(["pixels", "box", "fade"]),
        max_fraction=st.floats(0, 1),
        seed=st.integers(0, 99),
    ),
    noise=st.builds(
        NoiseConfig,
        schedule=st.sampled_from(["geometric", "linear"]),
        s_min=st.floats(1e-3, 0.1),
        s_max=st.floats(0.1, 5),
    ),
    levels=st.none() | st.lists(st.floats(0, 1), min_size=2, max_size=6).map(sorted),
)


@given(config=configs, data=batches(max_side=10, max_batch=2))
def test_config_json_round_trip_rebuilds_the_same_process(
    config: CorruptionConfig, data: tuple[Tensor, Tensor, Tensor]
) -> None:
    x, y, t = data
    again = CorruptionConfig.model_validate_json(config.model_dump_json())
    assert again == config
    size = (x.shape[-2], x.shape[-1])
    p, q = config.build(size), again.build(size)
    assert repr(p.operator) == repr(q.operator)
    assert torch.equal(p.C(x, t), q.C(x, t)) and torch.equal(p.CT(y, t), q.CT(y, t)) and torch.equal(p.s(t), q.s(t))


@pytest.mark.parametrize(
    ("spec", "s_max"), [("noise", 80.0), ("mask", 2.0), ("blur+mask", 2.0), ("strokes", 2.0), ("blur", 0.1)]
)
def test_default_noise_at_t1_follows_the_operator(spec: str, s_max: float) -> None:
    """Hiding operators default to noise on the data's scale (mask models sample the mean garment at 0.1)."""
    process = CorruptionConfig(spec=spec).build((8, 8))
    assert float(process.s(torch.tensor([1.0]))) == pytest.approx(s_max)
    given = CorruptionConfig(spec=spec, noise={"s_max": 0.3})
    assert given.noise_schedule(given.operator((8, 8)))(torch.tensor(1.0)) == pytest.approx(0.3)


PLUGIN = '''
import torch
from softdiff.corrupt import LinearCorruption


class HideLeft(LinearCorruption):
    """Hides the left columns, more of them as t grows (an inpainting operator of a user's)."""

    hides_pixels = True

    def forward(self, x, t):
        cols = torch.arange(x.shape[-1], device=x.device, dtype=x.dtype)
        keep = (cols[None, :] >= t[:, None] * x.shape[-1]).to(x.dtype)
        return x * keep[:, None, None, :]


class Dim(LinearCorruption):
    def forward(self, x, t):
        return x * (1 - 0.5 * t)[:, None, None, None]
'''


@pytest.mark.parametrize(
    ("part", "s_max"), [("HideLeft", 2.0), ("Dim", 0.1), ("blur+{file}:HideLeft", 2.0), ("noise+{file}:Dim", 0.1)]
)
def test_a_plugin_declares_the_noise_it_needs(tmp_path, part: str, s_max: float) -> None:
    """The noise default comes from the operator's ``hides_pixels``, for a plugin as for a built-in."""
    file = tmp_path / "ops.py"
    file.write_text(PLUGIN)
    spec = part.format(file=file) if "{file}" in part else f"{file}:{part}"
    process = CorruptionConfig(spec=spec).build((8, 8))
    assert float(process.s(torch.tensor([1.0]))) == pytest.approx(s_max)


def test_hiding_is_declared_by_each_operator_and_combined_by_compose() -> None:
    assert Mask("pixels").hides_pixels and Mask("box").hides_pixels and not Mask("fade").hides_pixels
    assert not Mask("pixels", max_fraction=0.0).hides_pixels
    assert Strokes().hides_pixels and Pixelate().hides_pixels and not GaussianBlur().hides_pixels
    assert (GaussianBlur() @ Mask()).hides_pixels and (Mask() @ GaussianBlur()).hides_pixels
    assert Identity().is_identity and (Identity() @ Identity()).is_identity
    assert not (Identity() @ GaussianBlur()).is_identity
    assert default_s_max(Identity()) == 80.0 and default_s_max(GaussianBlur() @ Identity()) == 0.1
