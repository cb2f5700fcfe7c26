"""Pydantic configuration of a corruption process and the ``"blur+mask"`` spec parser.

A spec is a ``+``-separated chain of registered operator names applied left to right:
``"blur+mask"`` blurs first, then masks (``C_t = M_t B_t``). ``"noise"`` is the identity
operator (vanilla diffusion). :func:`register_corruption` adds a name for a new operator.
The zoo operators (``desaturate``, ``fademean``, ``strokes``, ``motion``) have no config
section yet: their spec names build them with their defaults (lengths scaled to the image).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..validation import refuse_bool_numbers
from .base import LinearCorruption, compose
from .blur import GaussianBlur
from .desaturate import Desaturate
from .fade import FadeToMean
from .identity import Identity
from .mask import Mask
from .motion import MotionBlur
from .pixelate import Pixelate
from .process import CorruptionProcess
from .schedules import GeometricNoise, LevelTable, LinearNoise, Schedule
from .strokes import Strokes

__all__ = [
    "BlurConfig",
    "MaskConfig",
    "NoiseConfig",
    "CorruptionConfig",
    "register_corruption",
    "corruption_names",
    "parse_spec",
    "build_process",
]

ImageSize = tuple[int, int]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    _no_bools = model_validator(mode="before")(refuse_bool_numbers)


class BlurConfig(_Strict):
    sigma_min: float = Field(0.01, ge=0, description="blur width at t=0 in pixels (C_0 ≈ I)")
    sigma_max: float | None = Field(None, gt=0, description="blur width at t=1 in pixels; default 0.36 * min(H, W)")
    backend: Literal["dct", "kornia"] = "dct"
    border: Literal["reflect", "replicate", "constant", "circular"] = "reflect"

    @model_validator(mode="after")
    def _valid(self) -> BlurConfig:
        # the operator's own checks, run now rather than when a process is built for a size
        GaussianBlur(self.sigma_min, self.sigma_max or self.sigma_min, backend=self.backend, border=self.border)
        return self


class MaskConfig(_Strict):
    kind: Literal["pixels", "box", "fade"] = "pixels"
    max_fraction: float = Field(1.0, ge=0, le=1, description="fraction hidden at t=1")
    seed: int = 0


class NoiseConfig(_Strict):
    schedule: Literal["geometric", "linear"] = "geometric"
    s_min: float | None = Field(None, gt=0, description="noise at t=0; default 0.01")
    s_max: float | None = Field(
        None, gt=0, description="noise at t=1; default 80 for 'noise' (EDM), 2 with a hiding operator (mask), else 0.1"
    )

    @model_validator(mode="after")
    def _ordered(self) -> NoiseConfig:
        if self.s_min is not None and self.s_max is not None and self.s_max < self.s_min:
            raise ValueError(f"s_max ({self.s_max}) must be >= s_min ({self.s_min})")
        return self


Factory = Callable[["CorruptionConfig", ImageSize], LinearCorruption]

_REGISTRY: dict[str, Factory] = {}


def register_corruption(name: str, factory: Factory) -> None:
    """Make ``name`` usable in spec strings; ``factory(config, (H, W))`` builds the operator."""
    if not name.isidentifier():
        raise ValueError(f"corruption names must be identifiers, got {name!r}")
    _REGISTRY[name] = factory


def corruption_names() -> list[str]:
    return sorted(_REGISTRY)


def _blur(config: CorruptionConfig, size: ImageSize) -> LinearCorruption:
    b = config.blur
    sigma_max = b.sigma_max if b.sigma_max is not None else 0.36 * min(size)
    return GaussianBlur(b.sigma_min, sigma_max, backend=b.backend, border=b.border)


register_corruption("noise", lambda config, size: Identity())
register_corruption("blur", _blur)
register_corruption(
    "mask", lambda config, size: Mask(config.mask.kind, config.mask.max_fraction, seed=config.mask.seed)
)
register_corruption("desaturate", lambda config, size: Desaturate())
register_corruption("fademean", lambda config, size: FadeToMean())  # "fade" would read as Mask(kind="fade")
register_corruption("strokes", lambda config, size: Strokes())
register_corruption("motion", lambda config, size: MotionBlur(max_length=0.5 * min(size)))
# block size 1 at t = 0 up to the whole image at t = 1 (C_1 keeps only the mean, like the blur)
register_corruption("pixelate", lambda config, size: Pixelate(max_factor=max(size)))


def parse_spec(spec: str) -> list[str]:
    """Split ``"blur+mask"`` into known operator names, or raise a ``ValueError`` naming the bad one."""
    names = [part.strip() for part in spec.split("+")]
    for name in names:
        if name not in _REGISTRY:
            raise ValueError(
                f"unknown corruption {name!r} in {spec!r}; known: {', '.join(corruption_names())} (join with '+')"
            )
    return names


# Operators that hide pixels outright: a pixel goes from hidden to shown in one step, so the
# samples' diversity must come from the noise. With s_max = 0.1 mask models sample the mean
# garment (FID 691); with s_max = 2, about the data's range, real images (164); docs/benchmarks.md.
HIDING = frozenset({"mask", "strokes"})


def default_s_max(spec: str) -> float:
    """The noise at t = 1 when the config leaves it out: EDM's 80 for noise only, 2 when a part hides pixels."""
    names = parse_spec(spec)
    if names == ["noise"]:
        return 80.0
    return 2.0 if HIDING.intersection(names) else 0.1


class CorruptionConfig(_Strict):
    """Everything needed to rebuild a :class:`CorruptionProcess` for a given image size."""

    spec: str = "blur"
    blur: BlurConfig = BlurConfig()
    mask: MaskConfig = MaskConfig()
    noise: NoiseConfig = NoiseConfig()
    levels: list[float] | None = Field(
        None, description="time warp from `softdiff schedule` (source times of the chosen levels)"
    )

    @model_validator(mode="after")
    def _known_spec(self) -> CorruptionConfig:
        parse_spec(self.spec)
        if self.levels is not None:
            LevelTable(self.levels)  # validates length and finiteness
            if (
                any(b < a for a, b in zip(self.levels, self.levels[1:], strict=False))
                or not 0 <= self.levels[0] <= self.levels[-1] <= 1
            ):
                raise ValueError("levels must be non-decreasing times in [0, 1]")
        return self

    def noise_schedule(self) -> Schedule:
        s_min = self.noise.s_min if self.noise.s_min is not None else 0.01
        s_max = self.noise.s_max if self.noise.s_max is not None else default_s_max(self.spec)
        return (GeometricNoise if self.noise.schedule == "geometric" else LinearNoise)(s_min, max(s_max, s_min))

    def operator(self, size: ImageSize) -> LinearCorruption:
        ops = [_REGISTRY[name](self, size) for name in parse_spec(self.spec)]
        return compose(*reversed(ops))  # first name is applied first

    def build(self, size: ImageSize) -> CorruptionProcess:
        warp = LevelTable(self.levels) if self.levels is not None else None
        return CorruptionProcess(self.operator(size), self.noise_schedule(), warp)


def build_process(spec: str, size: ImageSize, **overrides: object) -> CorruptionProcess:
    """``build_process("blur+mask", (28, 28))``: a process with the defaults for that image size."""
    return CorruptionConfig(spec=spec, **overrides).build(size)  # type: ignore[arg-type]
