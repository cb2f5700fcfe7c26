"""Pydantic configuration of a corruption process, and the registry that spec names come from.

A spec (:mod:`softdiff.corrupt.spec` has the grammar) is a ``+``-separated chain of
operators applied left to right: ``"blur+mask"`` blurs first, then masks
(``C_t = M_t B_t``). ``"noise"`` is the identity operator (vanilla diffusion). A part is a
registered name (:func:`register_corruption` adds one) or a plugin class,
``module.path:ClassName`` or ``path/to/file.py:ClassName``, and may carry parameters:
``blur:sigma_max=5+mask:max_fraction=0.5``. Every registered name owns a ``Params`` model
(``blur`` and ``mask`` the config sections :class:`BlurConfig` and :class:`MaskConfig`,
whose values a part's parameters override); a plugin's are its constructor arguments
(see :mod:`softdiff.corrupt.plugins`), from ``params`` or from the part.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..registry import NoParams, Registry
from ..validation import refuse_bool_numbers
from .base import LinearCorruption, compose, default_s_max
from .blur import GaussianBlur
from .desaturate import Desaturate
from .fade import FadeToMean
from .identity import Identity
from .mask import Mask
from .motion import MotionBlur
from .pixelate import Pixelate
from .plugins import PluginRef, load_plugin, parse_plugin, split_params, validate_params
from .process import CorruptionProcess
from .schedules import GeometricNoise, LevelTable, LinearNoise, Schedule
from .spec import TIME_KEY, SpecPart, split_spec
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
    "spec_parts",
    "build_process",
]

ImageSize = tuple[int, int]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    _no_bools = model_validator(mode="before")(refuse_bool_numbers)


class BlurConfig(_Strict):
    """Gaussian blur from ``sigma_min`` to ``sigma_max``; ``sigma`` (in a spec) is one fixed width, both ends."""

    sigma_min: float = Field(0.01, ge=0, description="blur width at t=0 in pixels (C_0 ≈ I)")
    sigma_max: float | None = Field(None, ge=0, description="blur width at t=1 in pixels; default 0.36 * min(H, W)")
    backend: Literal["dct", "kornia"] = "dct"
    border: Literal["reflect", "replicate", "constant", "circular"] = "reflect"

    @model_validator(mode="before")
    @classmethod
    def _fixed_width(cls, data: Any) -> Any:
        # `blur:sigma=2` (the restoration spec since the first milestone) is a blur of one width at every t
        if not isinstance(data, dict) or "sigma" not in data:
            return data
        sigma = data["sigma"]
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
            raise ValueError(f"sigma={sigma!r} is not a number")
        if not math.isfinite(sigma):
            raise ValueError(f"sigma must be finite, got {sigma}")
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0 pixels, got {sigma:g}")
        if "sigma_min" in data or "sigma_max" in data:
            raise ValueError("sigma is one fixed width (sigma_min = sigma_max = sigma): give it alone")
        rest = {k: v for k, v in data.items() if k != "sigma"}
        return {**rest, "sigma_min": data["sigma"], "sigma_max": data["sigma"]}

    @model_validator(mode="after")
    def _valid(self) -> BlurConfig:
        # the operator's own checks, run now rather than when a process is built for a size
        GaussianBlur(self.sigma_min, self.sigma_max or self.sigma_min, backend=self.backend, border=self.border)
        return self


class MaskConfig(_Strict):
    kind: Literal["pixels", "box", "fade"] = "pixels"
    max_fraction: float = Field(
        1.0,
        ge=0,
        le=1,
        validation_alias=AliasChoices("max_fraction", "fraction"),
        description="fraction hidden at t=1 (`fraction` in a spec such as mask:fraction=0.5)",
    )
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


Factory = Callable[["CorruptionConfig", ImageSize], LinearCorruption]  # a name without Params (the old form)
ParamsFactory = Callable[[Any, ImageSize], LinearCorruption]  # (its validated Params, (H, W)) -> the operator


@dataclass(frozen=True)
class CorruptionEntry:
    """A registered name: its ``Params`` model and how to build the operator from them for an image size.

    ``section`` names the :class:`CorruptionConfig` section that holds the name's settings
    (``blur``, ``mask``): a part's own parameters override that section's values.
    """

    build: Callable[[CorruptionConfig, Any, ImageSize], LinearCorruption]
    Params: type[BaseModel] = NoParams
    section: str | None = None

    def resolve(self, config: CorruptionConfig | None, given: dict[str, Any], where: str) -> BaseModel:
        """The part's settings: the config section's (if any), updated by ``given``, validated."""
        base = getattr(config, self.section).model_dump(exclude_defaults=True) if config and self.section else {}
        return _validated(self.Params, {**base, **given}, where)


CORRUPTIONS: Registry[CorruptionEntry] = Registry("corruption")
CUSTOM = "custom"  # the spec train() records for an operator object it cannot write down as a reference


def register_corruption(
    name: str,
    factory: Factory | ParamsFactory,
    *,
    params: type[BaseModel] | None = None,
    replace: bool = False,
) -> None:
    """Make ``name`` usable in spec strings.

    Without ``params``, ``factory(config, (H, W))`` builds the operator and the name takes no
    parameters. With a pydantic model ``params``, ``factory(settings, (H, W))`` gets the
    part's validated settings (``name:key=value`` in a spec), in training and restoration
    alike. A taken name (built-ins included) is an error unless ``replace=True``.
    """
    if params is None:
        entry = CorruptionEntry(lambda config, _, size: factory(config, size))  # type: ignore[call-arg,arg-type]
    else:
        entry = CorruptionEntry(lambda _, settings, size: factory(settings, size), params)  # type: ignore[arg-type]
    CORRUPTIONS.register(name, entry, replace=replace)


def corruption_names() -> list[str]:
    return CORRUPTIONS.names()


def _validated(model: type[BaseModel], values: dict[str, Any], where: str) -> BaseModel:
    """``model(**values)``, or one ``ValueError`` line naming the parameter of ``where`` that is wrong."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        known = ", ".join(model.model_fields) or "none"
        if first["type"] == "extra_forbidden":
            raise ValueError(f"{where} has no parameter {key!r} (its parameters: {known})") from None
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{where}: {key + ': ' if key else ''}{message}") from None
    except ValueError as err:
        raise ValueError(f"{where}: {str(err).splitlines()[0]}") from None


def _custom(config: CorruptionConfig, size: ImageSize) -> LinearCorruption:
    raise ValueError(
        f"corruption {CUSTOM!r} stands for an operator object given to train() that could not be recorded as "
        "module:Class; it cannot be rebuilt from a config: pass the same object again (load_run(path, corruption=op))"
    )


def _blur(config: CorruptionConfig, b: BlurConfig, size: ImageSize) -> LinearCorruption:
    sigma_max = b.sigma_max if b.sigma_max is not None else 0.36 * min(size)
    return GaussianBlur(b.sigma_min, sigma_max, backend=b.backend, border=b.border)


def _mask(config: CorruptionConfig, m: MaskConfig, size: ImageSize) -> LinearCorruption:
    return Mask(m.kind, m.max_fraction, seed=m.seed)


class _Zoo(_Strict):
    """Settings of the zoo operators: the constructors' own arguments (their defaults apply when left out)."""

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class DesaturateParams(_Zoo):
    max_fraction: float = Field(1.0, ge=0, le=1, description="fraction of the way to grey at t=1")
    weights: list[float] | None = Field(None, description="luminance weights per channel (sum 1); default Rec. 601")


class FadeParams(_Zoo):
    max_fraction: float = Field(1.0, ge=0, le=1, description="fraction of the way to the image mean at t=1")
    per_channel: bool = Field(False, description="fade each channel to its own mean")


class StrokesParams(_Zoo):
    strokes: int = Field(8, ge=1, description="brush strokes at t=1")
    brush: float = Field(0.1, gt=0, description="brush width, a fraction of the image side")
    length: float = Field(0.6, gt=0, description="stroke length, a fraction of the image side")
    max_fraction: float = Field(1.0, ge=0, le=1, description="fraction of the strokes drawn at t=1")
    seed: int = 0


class MotionParams(_Zoo):
    max_length: float | None = Field(None, ge=0, description="length at t=1 in pixels; default half the image side")
    angle: float = Field(30.0, description="direction in degrees, counter-clockwise from +x")
    centred: bool = True
    border: Literal["circular", "constant"] = "circular"


class PixelateParams(_Zoo):
    max_factor: float | None = Field(
        None,
        ge=1,
        validation_alias=AliasChoices("max_factor", "factor"),
        description="block size at t=1 in pixels (`factor` in a spec); default the image side (C_1 keeps the mean)",
    )


class BoxParams(_Zoo):
    size: int | None = Field(None, ge=1, description="side of the centred hidden box at t=1 in pixels; default all")


def _zoo(cls: type[LinearCorruption]) -> Callable[[CorruptionConfig, _Zoo, ImageSize], LinearCorruption]:
    return lambda config, settings, size: cls(**settings.kwargs())


def _motion(config: CorruptionConfig, p: MotionParams, size: ImageSize) -> LinearCorruption:
    length = p.max_length if p.max_length is not None else 0.5 * min(size)
    return MotionBlur(**{**p.kwargs(), "max_length": length})


def _pixelate(config: CorruptionConfig, p: PixelateParams, size: ImageSize) -> LinearCorruption:
    # block size 1 at t = 0 up to the whole image at t = 1 (C_1 keeps only the mean, like the blur)
    return Pixelate(max_factor=p.max_factor if p.max_factor is not None else max(size))


def _box(config: CorruptionConfig, p: BoxParams, size: ImageSize) -> LinearCorruption:
    side = min(size)
    box = p.size if p.size is not None else side
    if box > side:
        raise ValueError(f"box:size must be between 1 and the image side {side}, got {box} (0 hides nothing)")
    if box % 2 != side % 2:
        raise ValueError(f"a centred box on a {side}-pixel side has a size of the same parity; got box:size={box}")
    return Mask("box", (box / side) ** 2)  # half-extent size / (2 side) in unit coordinates: `size` pixels


for _name, _entry in {
    "noise": CorruptionEntry(lambda config, _, size: Identity()),
    "blur": CorruptionEntry(_blur, BlurConfig, "blur"),  # type: ignore[arg-type]
    "mask": CorruptionEntry(_mask, MaskConfig, "mask"),  # type: ignore[arg-type]
    "box": CorruptionEntry(_box, BoxParams),  # type: ignore[arg-type]
    "desaturate": CorruptionEntry(_zoo(Desaturate), DesaturateParams),  # type: ignore[arg-type]
    "fademean": CorruptionEntry(_zoo(FadeToMean), FadeParams),  # type: ignore[arg-type]  # "fade": Mask(kind="fade")
    "strokes": CorruptionEntry(_zoo(Strokes), StrokesParams),  # type: ignore[arg-type]
    "motion": CorruptionEntry(_motion, MotionParams),  # type: ignore[arg-type]
    "pixelate": CorruptionEntry(_pixelate, PixelateParams),  # type: ignore[arg-type]
    CUSTOM: CorruptionEntry(lambda config, _, size: _custom(config, size)),
}.items():
    CORRUPTIONS.register(_name, _entry)


def spec_parts(spec: str, *, time: bool = False) -> list[SpecPart]:
    """The parts of ``spec``, checked: names known, their parameters valid, plugin references well formed.

    Nothing is imported: a plugin part is checked for its form only and comes back with a
    file path made absolute. ``time=True`` (restoration) lets a part carry ``t=``; a
    training spec refuses it, since a training corruption spans every time.
    """
    parts = []
    for part in split_spec(spec):
        given = dict(part.params)
        if TIME_KEY in given and not time:
            raise ValueError(
                f"{part}: t= freezes an operator at one time, which is for restoration "
                "(softdiff restore --operator); a training corruption spans every t in [0, 1]"
            )
        given.pop(TIME_KEY, None)
        if part.is_plugin:
            ref = parse_plugin(part.ref)
            if not ref.is_file and ref.target in CORRUPTIONS:
                raise ValueError(
                    f"{part.ref!r} in {spec!r} reads as the class {ref.name} of a plugin module {ref.target!r}; "
                    f"parameters of {ref.target} are key=value ({ref.target}:{ref.name}=...)"
                )
            parts.append(SpecPart(str(ref), part.params))
        elif part.ref not in CORRUPTIONS:
            raise ValueError(
                f"unknown corruption {part.ref!r} in {spec!r}; known: {', '.join(corruption_names())} "
                "(join with '+'), or a plugin module.path:ClassName / file.py:ClassName"
            )
        else:
            CORRUPTIONS[part.ref].resolve(None, given, str(part))
            parts.append(part)
    return parts


def parse_spec(spec: str) -> list[str]:
    """The texts of the parts of ``"blur+mask"``, or a ``ValueError`` naming the bad one (:func:`spec_parts`)."""
    return [str(part) for part in spec_parts(spec)]


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
        return [parse_plugin(part.ref) for part in spec_parts(self.spec) if part.is_plugin]

    def plugins(self) -> list[tuple[PluginRef, type[LinearCorruption], dict[str, Any]]]:
        """Import each plugin and check its parameters: ``(reference, class, keyword arguments)``.

        A plugin's arguments are its table in ``params`` updated by those written in its part
        of the spec. This is where a plugin's code runs, and where a missing module, a missing
        class or a bad parameter is a one-line ``ValueError``; call it early to fail before slow work.
        """
        parts = [part for part in spec_parts(self.spec) if part.is_plugin]
        refs = [parse_plugin(part.ref) for part in parts]
        out = []
        for ref, part, table in zip(refs, parts, split_params(refs, self.params), strict=True):
            cls = load_plugin(ref)
            kwargs = validate_params(cls, str(ref), {**table, **part.params})
            _construct(ref, cls, kwargs)  # the constructor's own checks (plugins do not depend on the image size)
            out.append((ref, cls, kwargs))
        return out

    @property
    def label(self) -> str:
        """A short name for folders and titles: plugins by class name (``blur-Pixelate``)."""
        return "-".join(parse_plugin(p.ref).name if p.is_plugin else p.ref for p in spec_parts(self.spec))

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
        for part in spec_parts(self.spec):
            if part.is_plugin:
                ops.append(_construct(*next(plugins)))
            else:
                entry = CORRUPTIONS[part.ref]
                ops.append(entry.build(self, entry.resolve(self, part.params, str(part)), size))
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
