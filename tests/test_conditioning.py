"""Conditioning through every layer, and classifier-free guidance.

With ``C = I`` the conditional samplers must equal k-diffusion's run with
``extra_args={"cond": labels}`` (hand transcriptions of ``sample_euler``, ``sample_heun``,
``sample_dpmpp_2m`` and ``sample_dpmpp_2m_sde`` from k_diffusion/sampling.py, float64), on
class-conditional Gaussian data whose exact denoiser is known per class. Guidance is
checked against k-diffusion's usual CFG wrapper, ``uncond + (cond - uncond) * scale``.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from softdiff.conditioning import (
    NULL_CLASS,
    Guided,
    bind,
    check_guidance,
    cond_length,
    cond_rows,
    guided_calls,
    resolve_classes,
)
from softdiff.corrupt import CorruptionProcess, GaussianBlur, GeometricNoise, Identity
from softdiff.models import UNet, UNetConfig
from softdiff.samplers import GaussianPrior, generate, get, names, uniform_grid
from softdiff.score import Denoiser, GaussianData, SoftScoreMatching

SHAPE = (1, 4, 4)
pytestmark = pytest.mark.usefixtures("one_thread")


def assert_close(actual: Tensor, expected: Tensor, tol: float) -> None:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    gap = (actual - expected).abs().max().item()
    assert gap <= tol, f"max abs difference {gap:.3g} > {tol:.1g}"


class ClassGaussians:
    """Class ``k`` is ``N(m_k, S)``; the null class (no label) is a third Gaussian: an exact denoiser per row."""

    def __init__(self, classes: int = 2, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        base = GaussianData.random(SHAPE, g)
        n = base.dim
        self.parts = [GaussianData(base.mean + torch.randn(n, generator=g, dtype=torch.float64), base.cov, SHAPE)]
        self.parts += [
            GaussianData(base.mean + 2 * torch.randn(n, generator=g, dtype=torch.float64), base.cov, SHAPE)
            for _ in range(classes)
        ]
        self.calls = 0

    def denoiser(self, process: CorruptionProcess):  # noqa: ANN201
        exact = [part.denoiser(process) for part in self.parts]  # index 0: the null class

        def denoise(x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
            self.calls += 1
            labels = torch.full((len(x),), NULL_CLASS) if cond is None else cond
            out = torch.empty_like(x)
            for k, part in enumerate(exact):
                rows = labels == k - 1
                if bool(rows.any()):
                    out[rows] = part(x[rows], t[rows])
            return out

        return denoise


def ve_process() -> CorruptionProcess:
    return CorruptionProcess(Identity(), GeometricNoise(0.02, 5.0))


def blur_process() -> CorruptionProcess:
    return CorruptionProcess(GaussianBlur(0.01, 3.0), GeometricNoise(0.01, 0.1))


LABELS = torch.tensor([0, 1, 1, 0, NULL_CLASS, 1, 0, 0])


def start(process: CorruptionProcess, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return float(process.s(torch.tensor(1.0, dtype=torch.float64))) * torch.randn(
        len(LABELS), *SHAPE, generator=g, dtype=torch.float64
    )


# ---- k-diffusion, transcribed, with extra_args ----------------------------------------


def k_sigmas(process: CorruptionProcess, ts: Tensor) -> Tensor:
    return torch.cat([process.s(ts[:-1]), torch.zeros(1, dtype=torch.float64)])


def k_model(denoise, ts: Tensor, sigmas: Tensor):  # noqa: ANN001, ANN201
    """k-diffusion's model takes sigma and ``**extra_args``; ours takes t and ``cond=``."""

    def model(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        i = int((sigmas[:-1] - sigma).abs().argmin())
        return denoise(x, ts[i].repeat(x.shape[0]), cond)

    return model


def k_cfg(model, scale: float):  # noqa: ANN001, ANN201
    """The usual CFG wrapper: ``uncond + (cond - uncond) * cond_scale``."""

    def guided(x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        uncond, conditional = model(x, sigma), model(x, sigma, cond)
        return uncond + (conditional - uncond) * scale

    return guided


def k_euler(model, x: Tensor, sigmas: Tensor, extra_args: dict, heun: bool = False) -> Tensor:  # noqa: ANN001
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i], **extra_args)
        d = (x - denoised) / sigmas[i]
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0 or not heun:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = (x_2 - model(x_2, sigmas[i + 1], **extra_args)) / sigmas[i + 1]
            x = x + (d + d_2) / 2 * dt
    return x


def k_dpmpp_2m(model, x: Tensor, sigmas: Tensor, extra_args: dict) -> Tensor:  # noqa: ANN001
    sigma_fn, t_fn = (lambda t: t.neg().exp()), (lambda sigma: sigma.log().neg())
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i], **extra_args)
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            r = (t - t_fn(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def k_dpmpp_2m_sde(model, x: Tensor, sigmas: Tensor, extra_args: dict, generator: torch.Generator) -> Tensor:  # noqa: ANN001
    old_denoised = h_last = h = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i], **extra_args)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = eta_h = s - t
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                x = x + 0.5 * (-h - eta_h).expm1().neg() * (h / h_last) * (denoised - old_denoised)
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + noise * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt()
        old_denoised, h_last = denoised, h
    return x


@pytest.mark.parametrize("guidance", [None, 3.0])
@pytest.mark.parametrize("steps", [1, 2, 6])
def test_with_identity_conditional_samplers_are_k_diffusion_with_extra_args(steps: int, guidance: float | None) -> None:
    data, process, ts = ClassGaussians(), ve_process(), uniform_grid(steps)
    exact = data.denoiser(process)
    denoise = exact if guidance is None else Guided(exact, guidance)
    sigmas = k_sigmas(process, ts)
    model = k_model(exact, ts, sigmas)
    model = model if guidance is None else k_cfg(model, guidance)
    x1, extra = start(process), {"cond": LABELS}
    for name, reference in [
        ("euler", k_euler(model, x1, sigmas, extra)),
        ("heun", k_euler(model, x1, sigmas, extra, heun=True)),
        ("dpmpp_2m", k_dpmpp_2m(model, x1, sigmas, extra)),
    ]:
        assert_close(get(name)(denoise, process, x1, ts, cond=LABELS), reference, 1e-10)
    ours = get("dpmpp_2m_sde")(denoise, process, x1, ts, generator=torch.Generator().manual_seed(5), cond=LABELS)
    theirs = k_dpmpp_2m_sde(model, x1, sigmas, extra, torch.Generator().manual_seed(5))
    assert_close(ours, theirs, 1e-10)


def test_the_condition_changes_the_samples() -> None:
    """The reference test above must not pass by ignoring cond: other labels give other samples."""
    data, process, ts = ClassGaussians(), ve_process(), uniform_grid(4)
    x1 = start(process)
    a = get("euler")(data.denoiser(process), process, x1, ts, cond=LABELS)
    b = get("euler")(data.denoiser(process), process, x1, ts, cond=1 - LABELS.clamp_min(0))
    assert (a - b).abs().amax(dim=(1, 2, 3)).min() > 1e-3


@pytest.mark.parametrize("name", sorted(set(names())))
def test_every_sampler_passes_cond_to_every_call(name: str) -> None:
    """Row by row, a conditional run equals the unconditional run of that row's class alone (any C_t)."""
    process, ts = blur_process(), uniform_grid(4)
    data = ClassGaussians()
    x1 = start(process).float()
    seeds = [torch.Generator().manual_seed(2) for _ in range(3)]
    labels = torch.tensor([0, 1] * 4)
    together = get(name)(data.denoiser(process), process, x1, ts, generator=seeds[0], cond=labels)
    for k in (0, 1):
        part = data.parts[k + 1].denoiser(process)  # the class's exact denoiser, called without cond
        alone = get(name)(part, process, x1, ts, generator=torch.Generator().manual_seed(2))
        assert_close(together[labels == k], alone[labels == k], 1e-5)


def test_multistep_state_carries_with_cond() -> None:
    """dpmpp_3m keeps earlier x0_hat in its state: the conditional run equals one class run alone."""
    process, ts, data = blur_process(), uniform_grid(6), ClassGaussians()
    x1 = start(process)
    labels = torch.ones(len(x1), dtype=torch.long)
    out = get("dpmpp_3m")(data.denoiser(process), process, x1, ts, cond=labels)
    assert_close(out, get("dpmpp_3m")(data.parts[2].denoiser(process), process, x1, ts), 1e-10)


# ---- guidance -------------------------------------------------------------------------


def test_guidance_weights_and_network_calls() -> None:
    process, data = ve_process(), ClassGaussians()
    exact = data.denoiser(process)
    x, t = start(process), torch.full((len(LABELS),), 0.5, dtype=torch.float64)
    x0_c, x0_u = exact(x, t, LABELS), exact(x, t)
    for w, calls in [(0.0, 1), (1.0, 1), (2.5, 2)]:
        data.calls = 0
        assert_close(Guided(exact, w)(x, t, LABELS), x0_u + w * (x0_c - x0_u), 1e-12)
        assert data.calls == calls == guided_calls(w)
    assert_close(Guided(exact, 4.0)(x, t), x0_u, 0)  # no cond: the unconditional denoiser whatever w
    for bad in (-0.1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="guidance weight"):
            check_guidance(bad)


def test_guided_score_is_the_extrapolated_score() -> None:
    """What docs/conditional.md says: for any C_t, guiding x0_hat guides the score by the same weight."""
    process, data, w = blur_process(), ClassGaussians(), 3.0
    exact = data.denoiser(process)
    x, t = start(process), torch.full((len(LABELS),), 0.4, dtype=torch.float64)
    s2 = process.s(t)[:, None, None, None] ** 2

    def score(x0: Tensor) -> Tensor:
        return (process.C(x0, t) - x) / s2

    s_c, s_u = score(exact(x, t, LABELS)), score(exact(x, t))
    assert_close(score(Guided(exact, w)(x, t, LABELS)), s_u + w * (s_c - s_u), 1e-8)


# ---- generate, cond helpers -----------------------------------------------------------


def gaussian_prior(process: CorruptionProcess) -> GaussianPrior:
    s1 = float(process.s(torch.tensor(1.0, dtype=torch.float64)))
    return GaussianPrior(torch.zeros(SHAPE), torch.zeros(16, 1), torch.zeros(1), s1)


def test_generate_splits_cond_by_batch_and_keeps_the_unconditional_path() -> None:
    process = ve_process()
    data = ClassGaussians()
    denoise = data.denoiser(process)
    prior = gaussian_prior(process)
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    kw = dict(sampler="euler", steps=4, seed=3, dtype=torch.float64)
    one = generate(denoise, process, prior, 7, batch_size=7, cond=labels, **kw)
    three = generate(denoise, process, prior, 7, batch_size=3, cond=labels, **kw)
    assert_close(one, three, 1e-12)
    plain = generate(denoise, process, prior, 7, batch_size=3, **kw)
    nulls = generate(denoise, process, prior, 7, batch_size=3, cond=torch.full((7,), NULL_CLASS), **kw)
    assert_close(plain, nulls, 0)
    assert (one - plain).abs().max() > 1e-3
    with pytest.raises(ValueError, match="one row per image"):
        generate(denoise, process, prior, 7, cond=labels[:5], **kw)


def test_cond_rows_and_dicts() -> None:
    cond = {"class": torch.arange(6), "scale": 2.0}
    assert cond_length(cond) == 6 and cond_length(None) is None
    part = cond_rows(cond, slice(2, 4))
    assert part["class"].tolist() == [2, 3] and part["scale"] == 2.0
    assert cond_rows(torch.arange(5), slice(1, 3)).tolist() == [1, 2]
    seen = []
    bound = bind(lambda x, t, cond=None: seen.append(cond) or x, cond)
    bound(torch.zeros(1), torch.zeros(1))
    assert seen == [cond]


def test_resolve_classes() -> None:
    classes = ["t-shirt", "trouser", "bag"]
    assert resolve_classes(["bag", "0", "all"], classes) == [2, 0, 0, 1, 2]
    with pytest.raises(ValueError, match="unknown class 'coat'"):
        resolve_classes(["coat"], classes)
    with pytest.raises(ValueError, match="unknown class '3'"):
        resolve_classes(["3"], classes)
    with pytest.raises(ValueError, match="unconditional"):
        resolve_classes(["0"], None)


# ---- network, denoiser, objective --------------------------------------------------------


def test_unconditional_unet_is_unchanged_and_refuses_labels() -> None:
    torch.manual_seed(0)
    plain = UNet(UNetConfig(image_size=8, base_channels=8))
    torch.manual_seed(0)
    conditional = UNet(UNetConfig(image_size=8, base_channels=8, num_classes=3))
    assert set(conditional.state_dict()) - set(plain.state_dict()) == {"class_embed.weight"}
    for name, value in plain.state_dict().items():  # the embedding is built last: same weights otherwise
        assert torch.equal(value, conditional.state_dict()[name]), name
    x, t = torch.randn(4, 1, 8, 8), torch.rand(4)
    with pytest.raises(ValueError, match="unconditional"):
        plain(x, t, cond=torch.zeros(4, dtype=torch.long))


def test_class_embedding_reaches_the_output() -> None:
    torch.manual_seed(0)
    net = UNet(UNetConfig(image_size=8, base_channels=8, num_classes=3))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x, t = torch.randn(3, 1, 8, 8), torch.rand(3)
    a, b = net(x, t, cond=torch.tensor([0, 1, 2])), net(x, t, cond=torch.tensor([1, 1, 1]))
    assert (a[0] - b[0]).abs().max() > 1e-4 and torch.equal(a[1], b[1])
    assert torch.equal(net(x, t), net(x, t, cond=torch.full((3,), NULL_CLASS)))  # no cond is the null class
    assert torch.equal(net(x, t, cond={"class": torch.tensor([0, 1, 2])}), a)
    with pytest.raises(ValueError, match="must lie in 0..2"):
        net(x, t, cond=torch.tensor([0, 3, 1]))


def test_denoiser_and_objective_pass_cond_to_the_network() -> None:
    seen: list[object] = []

    class Net(torch.nn.Module):
        def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
            seen.append(cond)
            return torch.zeros_like(x)

    process = blur_process()
    denoiser = Denoiser(Net(), process, "residual")
    labels = torch.tensor([1, 0])
    loss = SoftScoreMatching(process)
    loss(denoiser, torch.zeros(2, 1, 4, 4), torch.Generator().manual_seed(0), cond=labels)
    loss(denoiser, torch.zeros(2, 1, 4, 4), torch.Generator().manual_seed(0))
    assert seen[0] is labels and seen[1] is None

    class Plain(torch.nn.Module):  # a network written before conditioning: still called as net(x, t)
        def forward(self, x: Tensor, t: Tensor) -> Tensor:
            return torch.zeros_like(x)

    Denoiser(Plain(), process, "residual")(torch.zeros(2, 1, 4, 4), torch.zeros(2))


# ---- a prior per class ------------------------------------------------------------------


def test_class_prior_draws_each_row_from_its_class_and_round_trips() -> None:
    from softdiff.samplers import ClassPrior, SeededNoise, draw_prior, fit_class_priors

    process = blur_process()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, *SHAPE), generator=g, dtype=torch.uint8)
    labels = torch.arange(40) % 2
    images[labels == 1] //= 4  # class 1 is darker: its prior's mean is too
    priors = fit_class_priors(process, images, labels, 2, rank=4, mixtures=2, per_class=20, seed=0)
    shared = gaussian_prior(process)
    prior = ClassPrior(priors, shared)
    rows = torch.tensor([1, 0, NULL_CLASS, 1])
    x = draw_prior(prior, SeededNoise(7, range(4)), "cpu", torch.float32, rows)
    for i, label in enumerate(rows.tolist()):  # row i, as if sample i were drawn alone from its class's prior
        alone = draw_prior(prior.prior_of(label), SeededNoise(7, [i]), "cpu", torch.float32)
        assert torch.equal(x[i : i + 1], alone)
    assert torch.equal(
        draw_prior(prior, SeededNoise(7, range(4)), "cpu", torch.float32),
        draw_prior(shared, SeededNoise(7, range(4)), "cpu", torch.float32),
    )  # no labels: the shared prior, as before
    again = ClassPrior.from_state_dict(prior.state_dict(), shared)
    for a, b in zip(again.priors, prior.priors, strict=True):
        assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert float(priors[1].state_dict()["mean"].mean()) < float(priors[0].state_dict()["mean"].mean())
