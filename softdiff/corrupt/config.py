"""Pydantic configuration of a corruption process and the ``"blur+mask"`` spec parser.

A spec is a ``+``-separated chain of operators applied left to right: ``"blur+mask"``
blurs first, then masks (``C_t = M_t B_t``). ``"noise"`` is the identity operator
(vanilla diffusion). A part is a registered name (:func:`register_corruption` adds one) or
a plugin class, ``module.path:ClassName`` or ``path/to/file.py:ClassName``, whose
constructor arguments are ``params`` (see :mod:`softdiff.corrupt.plugins`).
The zoo operators (``desaturate``, ``fademean``, ``strokes``, ``motion``) have no config
section yet: their spec names build them with their defaults (lengths scaled to the image).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..registry import Registry
from ..validation import refuse_bool_numbers
from .base import LinearCorruption, compose, default_s_max
from .blur import GaussianBlur
from .desaturate import Desaturate
from .fade import FadeToMean
from .identity import Identity
from .mask import Mask
from .motion import MotionBlur
from .pixelate import Pixelate
from .plugins import PluginRef, is_plugin, load_plugin, parse_plugin, split_params, validate_params
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
    "CORRUPTIONS",
    "CUSTOM",
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
        None,
        gt=0,
        description="noise at t=1; default 80 for 'noise' (EDM), 2 when the operator hides pixels (mask, strokes, "
        "a plugin with hides_pixels = True), else 0.1",
    )

    @model_validator(mode="after")
    def _ordered(self) -> NoiseConfig:
        if self.s_min is not None and self.s_max is not None and self.s_max < self.s_min:
            raise ValueError(f"s_max ({self.s_max}) must be >= s_min ({self.s_min})")
        return self


Factory = Callable[["CorruptionConfig", ImageSize], LinearCorruption]

CORRUPTIONS: Registry[Factory] = Registry("corruption")
MAX_SPEC_PARTS = 16  # a chain of hundreds of operators is a typo, and nests Compose past Python's recursion limit
CUSTOM = "custom"  # the spec train() records for an operator object it cannot write down as a reference


def register_corruption(name: str, factory: Factory, *, replace: bool = False) -> None:
    """Make ``name`` usable in spec strings; ``factory(config, (H, W))`` builds the operator.

    A taken name (built-ins included) is an error unless ``replace=True``.
    """
    CORRUPTIONS.register(name, factory, replace=replace)


def corruption_names() -> list[str]:
    return CORRUPTIONS.names()


def _custom(config: CorruptionConfig, size: ImageSize) -> LinearCorruption:
    raise ValueError(
        f"corruption {CUSTOM!r} stands for an operator object given to train() that could not be recorded as "
        "module:Class; it cannot be rebuilt from a config: pass the same object again (load_run(path, corruption=op))"
    )


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
register_corruption(CUSTOM, _custom)


def parse_spec(spec: str) -> list[str]:
    """Split ``"blur+mask"`` into its parts, or raise a ``ValueError`` naming the bad one.

    Registered names are checked; a plugin part (``mod:Class``, ``file.py:Class``) is checked
    for its form only (nothing is imported) and comes back with a file path made absolute.
    """
    split = spec.split("+")
    if len(split) > MAX_SPEC_PARTS:
        raise ValueError(f"a spec chains at most {MAX_SPEC_PARTS} operators, {spec[:40]!r}... has {len(split)}")
    parts = []
    for part in (p.strip() for p in split):
        if is_plugin(part):
            parts.append(str(parse_plugin(part)))
        elif part not in CORRUPTIONS:
            raise ValueError(
                f"unknown corruption {part!r} in {spec!r}; known: {', '.join(corruption_names())} "
                "(join with '+'), or a plugin module.path:ClassName / file.py:ClassName"
            )
        else:
            parts.append(part)
    return parts


class CorruptionConfig(_Strict):
    """Everything needed to rebuild a :class:`CorruptionProcess` for a given image size."""

    spec: str = "blur"
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="constructor arguments of the plugin in spec; with several plugins one table per class name",
    )
    blur: BlurConfig = BlurConfig()
    mask: MaskConfig = MaskConfig()
    noise: NoiseConfig = NoiseConfig()
    levels: list[float] | None = Field(
        None, description="time warp from `softdiff schedule` (source times of the chosen levels)"
    )

    @field_validator("spec")
    @classmethod
    def _known_spec(cls, spec: str) -> str:
        return "+".join(parse_spec(spec))  # plugin file paths made absolute: the record says where the code was

    @field_validator("params")
    @classmethod
    def _json_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        try:
            if json.loads(json.dumps(params, allow_nan=False)) == params:
                return params
        except (TypeError, ValueError):
            pass
        raise ValueError("params must hold plain JSON values (numbers, strings, booleans, lists, tables)")

    @model_validator(mode="after")
    def _consistent(self) -> CorruptionConfig:
        split_params(self.plugin_refs(), self.params)  # keys fit the spec's plugins (checked again when built)
        if self.levels is not None:
            LevelTable(self.levels)  # validates length and finiteness
            if (
                any(b < a for a, b in zip(self.levels, self.levels[1:], strict=False))
                or not 0 <= self.levels[0] <= self.levels[-1] <= 1
            ):
                raise ValueError("levels must be non-decreasing times in [0, 1]")
        return self

    def plugin_refs(self) -> list[PluginRef]:
        """The plugin parts of the spec, in order (nothing imported)."""
        return [parse_plugin(part) for part in parse_spec(self.spec) if is_plugin(part)]

    def plugins(self) -> list[tuple[PluginRef, type[LinearCorruption], dict[str, Any]]]:
        """Import each plugin and check its ``params``: ``(reference, class, keyword arguments)``.

        This is where a plugin's code runs, and where a missing module, a missing class or a
        bad parameter is a one-line ``ValueError``; call it early to fail before slow work.
        """
        refs = self.plugin_refs()
        out = []
        for ref, params in zip(refs, split_params(refs, self.params), strict=True):
            cls = load_plugin(ref)
            kwargs = validate_params(cls, str(ref), params)
            _construct(ref, cls, kwargs)  # the constructor's own checks (plugins do not depend on the image size)
            out.append((ref, cls, kwargs))
        return out

    @property
    def label(self) -> str:
        """A short name for folders and titles: plugins by class name (``blur-Pixelate``)."""
        return "-".join(parse_plugin(p).name if is_plugin(p) else p for p in parse_spec(self.spec))

    def resolved_noise(self, op: LinearCorruption) -> NoiseConfig:
        """The noise with its defaults for ``op`` written in (``s_min`` 0.01, ``s_max`` :func:`default_s_max`).

        A run records this, so a later change of a default never changes a trained model.
        """
        s_min = self.noise.s_min if self.noise.s_min is not None else 0.01
        s_max = self.noise.s_max if self.noise.s_max is not None else max(default_s_max(op), s_min)
        return self.noise.model_copy(update={"s_min": s_min, "s_max": s_max})

    def noise_schedule(self, op: LinearCorruption) -> Schedule:
        """The configured noise; an unset ``s_max`` is the one ``op`` needs (:func:`default_s_max`)."""
        noise = self.resolved_noise(op)
        return (GeometricNoise if noise.schedule == "geometric" else LinearNoise)(noise.s_min, noise.s_max)

    def operator(self, size: ImageSize) -> LinearCorruption:
        plugins = iter(self.plugins())
        ops = []
        for part in parse_spec(self.spec):
            if is_plugin(part):
                ops.append(_construct(*next(plugins)))
            else:
                ops.append(CORRUPTIONS[part](self, size))
        return compose(*reversed(ops))  # first name is applied first

    def build(self, size: ImageSize) -> CorruptionProcess:
        warp = LevelTable(self.levels) if self.levels is not None else None
        op = self.operator(size)
        return CorruptionProcess(op, self.noise_schedule(op), warp)


def _construct(ref: PluginRef, cls: type[LinearCorruption], kwargs: dict[str, Any]) -> LinearCorruption:
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # the constructor's own checks, as one line naming the call
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        call = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ValueError(f"{ref}({call}): {first}") from None


def build_process(spec: str, size: ImageSize, **overrides: object) -> CorruptionProcess:
    """``build_process("blur+mask", (28, 28))``: a process with the defaults for that image size."""
    return CorruptionConfig(spec=spec, **overrides).build(size)  # type: ignore[arg-type]
