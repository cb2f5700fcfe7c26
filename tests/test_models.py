"""The time-conditioned U-Net: shapes, size, conditioning, gradients, config validation, dtypes."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from softdiff.models import UNet, UNetConfig

SMALL = {"base_channels": 8, "channel_mults": (1, 2), "groups": 4}


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def perturbed(net: UNet, seed: int = 0) -> UNet:
    """Give the zero-initialised output conv random weights, so the output depends on everything."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.conv_out.weight.copy_(torch.randn(net.conv_out.weight.shape, generator=g) * 0.1)
        net.conv_out.bias.copy_(torch.randn(net.conv_out.bias.shape, generator=g) * 0.1)
    return net


@pytest.mark.parametrize(
    ("config", "shape"),
    [
        (UNetConfig(), (2, 1, 28, 28)),
        (UNetConfig(in_channels=3, image_size=32), (2, 3, 32, 32)),
        (UNetConfig(in_channels=3, image_size=64, base_channels=16), (1, 3, 64, 64)),
        (UNetConfig(), (2, 1, 27, 33)),  # odd, non-square: padded internally, cropped back
        (UNetConfig(out_channels=2), (2, 1, 13, 5)),
        (UNetConfig(**SMALL, downsample="conv", mid_block=True, num_res_blocks=2, image_size=9), (2, 1, 9, 9)),
    ],
)
def test_output_shape(config: UNetConfig, shape: tuple[int, ...]) -> None:
    net = perturbed(UNet(config))
    x = torch.randn(shape)
    out = net(x, torch.rand(shape[0]))
    assert out.shape == (shape[0], config.output_channels, *shape[2:])
    assert torch.isfinite(out).all()


def test_default_size_and_zero_init() -> None:
    net = UNet()
    assert n_params(net) == 147_553, n_params(net)  # 16 channels: the run's default, one home (UNetConfig)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(net(x, torch.rand(3)), torch.zeros_like(x))  # residual parameterisation starts at identity


def test_attention_levels() -> None:
    assert UNetConfig().attention_levels == (2,)  # 7x7 level of a 28x28 image
    assert UNetConfig(attention_resolutions=()).attention_levels == ()
    assert UNetConfig(image_size=64, channel_mults=(1, 2, 2, 2), attention_resolutions=(16, 8)).attention_levels == (
        2,
        3,
    )
    n_attn = sum(1 for m in UNet().modules() if type(m).__name__ == "Attention")
    assert n_attn == 2  # one in the encoder and one in the decoder at 7x7
    assert n_params(UNet(UNetConfig(attention_resolutions=()))) < n_params(UNet())


@pytest.mark.parametrize("embedding", ["sinusoidal", "fourier"])
@pytest.mark.parametrize("conditioning", ["scale_shift", "bias"])
def test_time_matters_per_sample(embedding: str, conditioning: str) -> None:
    torch.manual_seed(0)
    net = perturbed(UNet(UNetConfig(**SMALL, time_embedding=embedding, time_conditioning=conditioning)))
    x = torch.randn(1, 1, 12, 12).expand(2, -1, -1, -1)
    out = net(x, torch.tensor([0.1, 0.9]))
    assert not torch.allclose(out[0], out[1], atol=1e-5)
    # each sample sees its own t: sample 0 equals a batch-of-one call at its own time
    torch.testing.assert_close(out[:1], net(x[:1], torch.tensor([0.1])), rtol=1e-5, atol=1e-6)


def test_time_matters_after_one_step_from_zero_init() -> None:
    torch.manual_seed(0)
    net = UNet(UNetConfig(**SMALL))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(4, 1, 8, 8)
    loss = (net(x, torch.rand(4)) - torch.randn_like(x)).square().mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        a, b = net(x, 0.0), net(x, 1.0)
    assert not torch.allclose(a, b)


def test_scalar_time_broadcasts() -> None:
    net = perturbed(UNet(UNetConfig(**SMALL)))
    x = torch.randn(3, 1, 8, 8)
    ref = net(x, torch.full((3,), 0.25))
    for t in (0.25, torch.tensor(0.25), torch.tensor([0.25])):
        torch.testing.assert_close(net(x, t), ref)
    with pytest.raises(ValueError, match="shape"):
        net(x, torch.rand(2))


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    net = perturbed(UNet(UNetConfig(mid_block=True, time_embedding="fourier")))
    x = torch.randn(2, 1, 28, 28)
    net(x, torch.rand(2)).square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"groups": 5}, "groups"),
        ({"base_channels": 12, "groups": 8}, "groups"),
        ({"num_heads": 3}, "num_heads"),
        ({"attention_resolutions": (8,)}, "attention_resolutions"),
        ({"attention_resolutions": (0,)}, "attention_resolutions"),
        ({"channel_mults": ()}, "channel_mults"),
        ({"channel_mults": (1, 0)}, "channel_mults"),
        ({"dropout": 1.5}, "dropout"),
        ({"in_channels": 0}, "in_channels"),
        ({"time_embedding": "learned"}, "time_embedding"),
        ({"num_res_blocks": 0}, "num_res_blocks"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_config_validation_names_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        UNetConfig(**kwargs)


def test_config_round_trips_json() -> None:
    cfg = UNetConfig(in_channels=3, channel_mults=(1, 2), attention_resolutions=(16,), image_size=32)
    assert UNetConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_bad_input_is_a_clear_error() -> None:
    net = UNet(UNetConfig(**SMALL))
    with pytest.raises(ValueError, match="input channel"):
        net(torch.randn(2, 3, 8, 8), torch.rand(2))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        net(torch.randn(1, 8, 8), torch.rand(1))


def test_deterministic_given_seed() -> None:
    x, t = torch.randn(2, 1, 12, 12), torch.rand(2)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        net = perturbed(UNet(UNetConfig(**SMALL, time_embedding="fourier")))
        outs.append(net(x, t))
    assert torch.equal(outs[0], outs[1])


def test_float64() -> None:
    net = perturbed(UNet(UNetConfig(**SMALL))).double()
    out = net(torch.randn(2, 1, 10, 10, dtype=torch.float64), torch.rand(2, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_bf16_autocast_close_to_float32() -> None:
    torch.manual_seed(0)
    net = perturbed(UNet())
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    ref = net(x, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, t)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    net = perturbed(UNet(UNetConfig(in_channels=3, image_size=16, base_channels=16, channel_mults=(1, 2))))
    x, t = torch.randn(2, 3, 16, 16), torch.rand(2)
    ref = net(x, t)
    out = net.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
