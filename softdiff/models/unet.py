"""A small time-conditioned U-Net: the default network behind every softdiff denoiser.

Residual blocks (GroupNorm + SiLU) receive the time embedding as a per-channel scale and
shift (or an added bias); self-attention (``scaled_dot_product_attention``) runs at the
resolutions listed in the config; resolution changes by 2x2 average pooling or strided
convolution (down) and nearest + conv (up), with a skip connection from every encoder block
to its decoder twin. Inputs whose sides are not a
multiple of ``2 ** (levels - 1)`` are padded (replicate) and the output cropped back, so any
image size works (28x28 grey, 32x32 or 64x64 RGB, odd non-square sizes).

The module is a plain ``nn.Module`` with ``forward(x, t)``; users can swap in any network
with the same signature. With ``num_classes > 0`` it is also class-conditional,
``forward(x, t, cond=labels)``: a learned embedding of the label (one more row for "no
class", :data:`~softdiff.conditioning.NULL_CLASS` or no ``cond`` at all) is added to the
time embedding, as in ADM and EDM; classifier-free guidance needs that null class.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor, nn

from ..conditioning import NULL_CLASS, Cond, class_labels
from ..validation import refuse_bool_numbers

__all__ = ["UNetConfig", "UNet"]


MAX_LEVELS = 12  # a level halves H and W: 12 levels take a 2048-pixel image to 1 pixel


class UNetConfig(BaseModel):
    """Size and shape of a :class:`UNet`. The defaults give 147,553 parameters for 28x28 grey.

    They are also a run's defaults (one home): 16 channels show garment shapes after a few
    hundred CPU steps and train ~3x faster than 32 (``base_channels=32``: 585,409).

    Attention layers are fixed at construction, so ``attention_resolutions`` are mapped to level
    indices through the nominal ``image_size``; the built network still accepts any input size.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    _no_bools = model_validator(mode="before")(refuse_bool_numbers)

    in_channels: int = Field(1, ge=1, description="image channels (1 grey, 3 RGB)")
    out_channels: int | None = Field(None, ge=1, description="output channels; default = in_channels")
    base_channels: int = Field(16, ge=1, description="channels at full resolution")
    channel_mults: tuple[int, ...] = Field(
        (1, 2, 2),
        min_length=1,
        max_length=MAX_LEVELS,
        description="channel multiplier per level; each level after the first halves H and W",
    )
    num_res_blocks: int = Field(1, ge=1, le=64, description="residual blocks per level (encoder and decoder)")
    image_size: int = Field(
        28, ge=1, description="smaller side of the training images; only maps attention_resolutions to levels"
    )
    attention_resolutions: tuple[int, ...] | None = Field(
        None,
        max_length=MAX_LEVELS,
        description="feature-map sizes (smaller side, pixels) that get self-attention; "
        "default: the lowest level only (7 for 28x28); empty = none",
    )
    num_heads: int | None = Field(None, ge=1, description="attention heads; default: up to 4 with >= 16 channels each")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout inside residual blocks")
    time_embedding: Literal["sinusoidal", "fourier"] = Field("sinusoidal", description="embedding of t in [0, 1]")
    time_channels: int | None = Field(
        None, ge=2, description="width of the time-embedding MLP; default 2 * base_channels"
    )
    time_conditioning: Literal["scale_shift", "bias"] = Field(
        "scale_shift", description="how t enters a residual block: norm(h) * (1 + scale) + shift, or h + bias"
    )
    downsample: Literal["conv", "avgpool"] = Field("avgpool", description="strided 3x3 conv or 2x2 average pool")
    mid_block: bool = Field(False, description="an extra residual block (+ attention) at the lowest resolution")
    groups: int = Field(8, ge=1, description="GroupNorm groups; must divide every level's channel count")
    num_classes: int = Field(
        0, ge=0, le=100_000, description="classes of a class-conditional network (0: unconditional; train --cond class)"
    )

    @field_validator("channel_mults")
    @classmethod
    def _positive_mults(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(m < 1 for m in v):
            raise ValueError(f"every channel multiplier must be >= 1, got {v}")
        return v

    @field_validator("attention_resolutions")
    @classmethod
    def _positive_resolutions(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is None:
            return None
        if any(r < 1 for r in v):
            raise ValueError(f"attention resolutions are sizes in pixels and must be >= 1, got {v}")
        return tuple(sorted(set(v), reverse=True))

    @model_validator(mode="after")
    def _consistent(self) -> UNetConfig:
        for c in self.level_channels:
            if c % self.groups:
                raise ValueError(
                    f"groups={self.groups} must divide every level's channel count {self.level_channels} "
                    "(base_channels * channel_mults); change groups, base_channels or channel_mults"
                )
        sizes = self.level_sizes
        if self.attention_resolutions is not None:
            missing = [r for r in self.attention_resolutions if r not in sizes]
            if missing:
                raise ValueError(
                    f"attention_resolutions {missing} match no level of a {self.image_size}-pixel image "
                    f"(image_size); its level sizes are {sizes}: list some of them in model.attention_resolutions "
                    "or train at an image size that has these levels"
                )
        for c in (self.level_channels[i] for i in self.attention_levels):
            if self.num_heads is not None and c % self.num_heads:
                raise ValueError(f"num_heads={self.num_heads} must divide the channels ({c}) of every attention level")
        return self

    @property
    def level_channels(self) -> tuple[int, ...]:
        return tuple(self.base_channels * m for m in self.channel_mults)

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Smaller side of the feature map at each level for an ``image_size`` input (after padding)."""
        m = self.size_multiple
        padded = -(-self.image_size // m) * m
        return tuple(padded >> i for i in range(len(self.channel_mults)))

    @property
    def attention_levels(self) -> tuple[int, ...]:
        """Indices of the levels (0 = full resolution) that use self-attention."""
        if self.attention_resolutions is None:
            return (len(self.channel_mults) - 1,)
        return tuple(i for i, s in enumerate(self.level_sizes) if s in self.attention_resolutions)

    @property
    def output_channels(self) -> int:
        return self.in_channels if self.out_channels is None else self.out_channels

    @property
    def size_multiple(self) -> int:
        """Input sides are padded up to a multiple of this (one halving per extra level)."""
        return 2 ** (len(self.channel_mults) - 1)

    def heads_for(self, channels: int) -> int:
        """Heads for an attention layer of ``channels``: the configured value, else up to 4 of >= 16 channels."""
        if self.num_heads is not None:
            return self.num_heads
        return next(h for h in (4, 2, 1) if channels % h == 0 and (channels // h >= 16 or h == 1))


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sin/cos features of ``1000 t`` (t in [0, 1] spans the usual 1000 steps)."""

    def __init__(self, dim: int, max_period: float = 10_000.0, scale: float = 1000.0) -> None:
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(max_period) * torch.arange(half) / half) * scale)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        angles = t[:, None] * self.freqs.to(t.dtype)[None]
        emb = torch.cat([angles.sin(), angles.cos()], dim=1)
        return F.pad(emb, (0, self.dim - emb.shape[1]))


class FourierEmbedding(nn.Module):
    """Random Fourier features ``[sin 2pi W t, cos 2pi W t]`` with fixed ``W ~ N(0, scale^2)`` (Song et al.).

    ``W`` is a persistent buffer, so checkpoints carry it and a reload gives the same features.
    """

    def __init__(self, dim: int, scale: float = 16.0) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(dim // 2) * scale)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        angles = 2 * math.pi * t[:, None] * self.weight.to(t.dtype)[None]
        emb = torch.cat([angles.sin(), angles.cos()], dim=1)
        return F.pad(emb, (0, self.dim - emb.shape[1]))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; time enters before the second conv as ``norm(h) * (1 + scale) + shift``
    (``scale_shift``, as in ADM) or as an added per-channel bias (``bias``, as in DDPM)."""

    def __init__(self, cin: int, cout: int, temb: int, groups: int, dropout: float, scale_shift: bool) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.scale_shift = scale_shift
        self.time = nn.Linear(temb, 2 * cout if scale_shift else cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        cond = self.time(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = cond.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + cond)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over all pixels of a feature map, with a residual connection."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.heads = heads

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, HW, c/heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Level(nn.Module):
    """The residual blocks (each optionally followed by attention) at one resolution, then a resampling.

    Encoder levels ``push`` every block output as a skip; decoder levels ``pop`` one skip per
    block and concatenate it to their input.
    """

    def __init__(
        self, cins: list[int], cout: int, temb: int, cfg: UNetConfig, attend: bool, resample: nn.Module | None = None
    ) -> None:
        super().__init__()
        scale_shift = cfg.time_conditioning == "scale_shift"
        self.blocks = nn.ModuleList(ResBlock(cin, cout, temb, cfg.groups, cfg.dropout, scale_shift) for cin in cins)
        self.attns = nn.ModuleList(
            Attention(cout, cfg.heads_for(cout), cfg.groups) if attend else nn.Identity() for _ in cins
        )
        self.resample = resample if resample is not None else nn.Identity()

    def forward(
        self, h: Tensor, emb: Tensor, push: list[Tensor] | None = None, pop: list[Tensor] | None = None
    ) -> Tensor:
        for block, attn in zip(self.blocks, self.attns, strict=True):
            if pop is not None:
                h = torch.cat([h, pop.pop()], dim=1)
            h = attn(block(h, emb))
            if push is not None:
                push.append(h)
        return self.resample(h)


def _downsample(channels: int, kind: str) -> nn.Module:
    if kind == "conv":
        return nn.Conv2d(channels, channels, 3, stride=2, padding=1)
    return nn.AvgPool2d(2)


class UNet(nn.Module):
    """Time-conditioned U-Net: ``net(x, t)`` with ``x`` (B, C, H, W) and ``t`` (B,) in [0, 1] (or a scalar).

    The final convolution is zero-initialised, so a fresh network outputs exactly 0: under the
    residual parameterisation ``x0_hat = x_t + net(x_t, t)`` training starts at the identity
    denoiser instead of a random map.
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else UNetConfig()
        self.config = cfg
        base, chans, n = cfg.base_channels, cfg.level_channels, cfg.num_res_blocks
        temb = cfg.time_channels or 2 * base
        attend = set(cfg.attention_levels)
        embed = SinusoidalEmbedding(base) if cfg.time_embedding == "sinusoidal" else FourierEmbedding(base)
        self.time_embed = nn.Sequential(embed, nn.Linear(base, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(cfg.in_channels, base, 3, padding=1)

        self.down = nn.ModuleList()
        skips, cin = [], base
        for i, c in enumerate(chans):
            down = None if i == len(chans) - 1 else _downsample(c, cfg.downsample)
            self.down.append(Level([cin] + [c] * (n - 1), c, temb, cfg, attend=i in attend, resample=down))
            skips += [c] * n
            cin = c

        deepest = len(chans) - 1
        self.mid = Level([cin] if cfg.mid_block else [], cin, temb, cfg, attend=deepest in attend)

        self.up = nn.ModuleList()
        for i in reversed(range(len(chans))):
            c = chans[i]
            cins = []
            for _ in range(n):
                cins.append(cin + skips.pop())
                cin = c
            up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1))
            self.up.append(Level(cins, c, temb, cfg, attend=i in attend, resample=up if i > 0 else None))
        self.norm_out = nn.GroupNorm(cfg.groups, cin)
        self.conv_out = nn.Conv2d(cin, cfg.output_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        # built last, so the other weights of a conditional network are those of the unconditional one;
        # zero-initialised, so training starts class-blind and the null row (index num_classes) stays neutral
        self.class_embed: nn.Embedding | None = None
        if cfg.num_classes:
            self.class_embed = nn.Embedding(cfg.num_classes + 1, temb)
            nn.init.zeros_(self.class_embed.weight)

    def forward(self, x: Tensor, t: Tensor | float, cond: Cond = None) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"UNet expects images of shape (B, C, H, W), got a tensor of shape {tuple(x.shape)}")
        if x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"UNet was built for {self.config.in_channels} input channel(s) but got {x.shape[1]} "
                f"(input shape {tuple(x.shape)}); set UNetConfig.in_channels"
            )
        emb = self.time_embed(self._times(t, x))
        if self.class_embed is not None:
            emb = emb + self.class_embed(self._classes(cond, x))
        elif class_labels(cond) is not None:
            raise ValueError("this U-Net is unconditional (num_classes = 0): it takes no class labels")
        h_in, w_in = x.shape[-2:]
        m = self.config.size_multiple
        pad_h, pad_w = -h_in % m, -w_in % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")

        h = self.conv_in(x)
        skips: list[Tensor] = []
        for level in self.down:
            h = level(h, emb, push=skips)
        h = self.mid(h, emb)
        for level in self.up:
            h = level(h, emb, pop=skips)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out[..., :h_in, :w_in] if pad_h or pad_w else out

    def _classes(self, cond: Cond, x: Tensor) -> Tensor:
        """Rows of the class embedding: the labels, with the null row for NULL_CLASS or no labels at all."""
        k = self.config.num_classes
        labels = class_labels(cond)
        if labels is None:
            return torch.full((x.shape[0],), k, dtype=torch.long, device=x.device)
        if labels.shape != (x.shape[0],):
            raise ValueError(
                f"class labels must be of shape ({x.shape[0]},) to match the batch, got {tuple(labels.shape)}"
            )
        labels = labels.to(device=x.device, dtype=torch.long)
        if bool(((labels < NULL_CLASS) | (labels >= k)).any()):
            raise ValueError(f"class labels must lie in 0..{k - 1} (or {NULL_CLASS}: no class), got {labels.tolist()}")
        return torch.where(labels == NULL_CLASS, torch.full_like(labels, k), labels)

    def _times(self, t: Tensor | float, x: Tensor) -> Tensor:
        """``t`` as a (B,) tensor in the parameters' dtype; a scalar (or one-element) ``t`` is broadcast."""
        dtype = self.conv_in.weight.dtype
        t = torch.as_tensor(t, device=x.device).to(dtype)
        if t.numel() == 1:
            return t.reshape(1).expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or of shape ({x.shape[0]},) to match the batch, got {tuple(t.shape)}")
        return t
