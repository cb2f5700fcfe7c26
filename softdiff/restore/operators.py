"""The degradation ``A`` of a restoration problem, from the same spec grammar as a training corruption.

A :class:`Degradation` is a time-dependent :class:`~softdiff.corrupt.LinearCorruption`
frozen at one time. Its spec is a training spec (:mod:`softdiff.corrupt.spec`) whose
parts may carry ``t=`` (default 1): ``motion:t=0.5``, ``blur:sigma=2``,
``mymod:MyOp:k=3,t=0.3``, ``blur:sigma=1+mask:fraction=0.3``, so every operator that
``softdiff train --corruption`` accepts (zoo and plugins too) is a restoration operator.
The specs of the first milestone read the same: ``blur:sigma=2`` is a fixed width,
``mask:fraction=0.5,seed=3``, ``box:size=12`` and ``pixelate:factor=4`` their operators at
``t = 1``. ``level:t=0.6`` is the model's own ``C_0.6``; ``level`` records the process time
``tau`` with ``C_tau = A`` when there is one (:func:`find_level`), which is what level entry
needs. :func:`register_degradation` adds a restoration-only name such as ``level``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from pydantic import ValidationError
from torch import Tensor

from ..corrupt import CorruptionConfig, CorruptionProcess, LinearCorruption
from ..corrupt.config import spec_parts
from ..corrupt.spec import TIME_KEY, SpecPart
from ..registry import Registry

__all__ = [
    "Degradation",
    "OperatorSpec",
    "parse_operator",
    "build_operator",
    "register_degradation",
    "degradation_names",
    "find_level",
]

Shape = tuple[int, int, int]
REQUIRED = object()


@dataclass(frozen=True)
class Degradation:
    """``A x = op(x, t)``: a linear, shape-preserving map at one fixed strength."""

    op: LinearCorruption
    t: float
    spec: str
    level: float | None = None  # process time tau with C_tau = A (level entry), when known

    def __call__(self, x: Tensor) -> Tensor:
        return self.op(x, self.t)

    def adjoint(self, y: Tensor) -> Tensor:
        return self.op.adjoint(y, self.t)

    def matrix(self, shape: Sequence[int]) -> Tensor:
        """Dense ``(D, D)`` matrix of ``A`` on images of ``shape``: for tests and small problems."""
        return self.op.matrix(shape, self.t)


Built = tuple[LinearCorruption, float, float | None]  # operator, its time, the process level (or None)
Factory = Callable[[dict[str, float], Shape, CorruptionProcess | None], Built]


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    params: dict[str, object]  # name -> default (REQUIRED when the spec must give it)
    integers: frozenset[str] = field(default_factory=frozenset)
    help: str = ""


_REGISTRY: Registry[_Entry] = Registry("restoration operator")


def register_degradation(
    name: str,
    factory: Factory,
    params: dict[str, object],
    *,
    integers: Sequence[str] = (),
    help: str = "",
    replace: bool = False,
) -> None:
    """Make ``name:key=value,...`` a restoration spec (a taken name is an error unless ``replace=True``).

    ``factory(values, (C, H, W), process)`` returns ``(operator, t, level)``: ``A`` is
    ``operator`` at time ``t``; ``level`` is the process time with ``C_level = A`` if the
    factory knows it (else None: :func:`build_operator` looks for one). ``params`` maps each
    key to its default, or to ``REQUIRED``; keys in ``integers`` must be whole numbers.
    """
    _REGISTRY.register(name, _Entry(factory, dict(params), frozenset(integers), help), replace=replace)


def degradation_names() -> list[str]:
    return _REGISTRY.names()


EXAMPLES = "blur:sigma=2, mask:fraction=0.5, box:size=12, pixelate:factor=4, motion:t=0.5, level:t=0.6"


@dataclass(frozen=True)
class OperatorSpec:
    """A parsed spec: a restoration-only name and its numeric parameters (defaults filled in), or
    the ``parts`` of a corruption spec and the one time ``t`` they are frozen at."""

    name: str
    values: dict[str, float]
    text: str
    parts: tuple[SpecPart, ...] = ()
    t: float = 1.0


def parse_operator(spec: str) -> OperatorSpec:
    """``"mask:fraction=0.5,seed=3"`` -> ``OperatorSpec``; a one-line ``ValueError`` says what is wrong.

    Nothing is built or imported: names and parameters are checked against the registries.
    """
    text = spec.strip()
    name, _, rest = text.partition(":")
    name = name.strip()
    if name not in _REGISTRY:
        return _corruption_spec(text)
    entry = _REGISTRY[name]
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = (s.strip() for s in part.partition("="))
        if not eq or key not in entry.params:
            known = ", ".join(entry.params) or "none"
            raise ValueError(f"bad operator spec {spec!r}: {part!r} is not key=value with a key of {name} ({known})")
        if key in values:
            raise ValueError(f"bad operator spec {spec!r}: {key} is given twice")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"bad operator spec {spec!r}: {key}={raw!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"bad operator spec {spec!r}: {key} must be finite, got {raw}")
        if key in entry.integers and value != int(value):
            raise ValueError(f"bad operator spec {spec!r}: {key} must be a whole number, got {raw}")
        values[key] = value
    missing = [key for key, default in entry.params.items() if default is REQUIRED and key not in values]
    if missing:
        raise ValueError(f"operator spec {spec!r} needs {', '.join(missing)}; e.g. {name}:{entry.help}")
    defaults = {k: float(v) for k, v in entry.params.items() if v is not REQUIRED and k not in values}  # type: ignore[arg-type]
    return OperatorSpec(name, {**defaults, **values}, text)


def _corruption_spec(text: str) -> OperatorSpec:
    """A training spec whose parts may carry ``t=``: every part frozen at the one time given (default 1)."""
    try:
        parts = spec_parts(text, time=True)
    except ValueError as err:
        if str(err).startswith("unknown corruption"):
            names = ", ".join(degradation_names())
            raise ValueError(f"{err}, or a restoration-only name: {names} (e.g. {EXAMPLES})") from None
        raise
    times = {_time(part, text) for part in parts if TIME_KEY in part.params}
    if len(times) > 1:
        raise ValueError(f"the parts of {text!r} are frozen at different times {sorted(times)}: give them one t")
    bare = tuple(SpecPart(p.ref, {k: v for k, v in p.params.items() if k != TIME_KEY}) for p in parts)
    values = dict(parts[0].params) if len(parts) == 1 else {}
    return OperatorSpec("+".join(p.ref for p in parts), values, text, bare, times.pop() if times else 1.0)


def _time(part: SpecPart, text: str) -> float:
    t = part.params[TIME_KEY]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
        raise ValueError(f"{part}: t is the operator's time, a number in [0, 1], got {t!r} (in {text!r})")
    return float(t)


def build_operator(spec: str | OperatorSpec, shape: Shape, process: CorruptionProcess | None = None) -> Degradation:
    """The degradation a spec names, for images of ``shape = (C, H, W)``.

    ``process`` (the model's) is needed for ``level:t=...``; given, it is also searched for
    a level ``tau`` with ``C_tau = A`` (:func:`find_level`), recorded as ``level``.
    """
    parsed = parse_operator(spec) if isinstance(spec, str) else spec
    if parsed.parts:
        try:
            config = CorruptionConfig(spec="+".join(str(p) for p in parsed.parts))
        except ValidationError as err:
            raise ValueError(str(err.errors()[0]["msg"]).removeprefix("Value error, ")) from None
        op, t, level = config.operator((shape[1], shape[2])), parsed.t, None
    else:
        op, t, level = _REGISTRY[parsed.name].factory(parsed.values, shape, process)
    degradation = Degradation(op, float(t), parsed.text, level)
    _check_finite(degradation, shape)
    if level is None and process is not None:
        degradation = replace(degradation, level=find_level(degradation, process, shape))
    return degradation


def _check_finite(degradation: Degradation, shape: Shape) -> None:
    """Refuse an operator whose output or adjoint is not finite on a probe image (e.g. ``blur:sigma=1e308``)."""
    for dtype in (torch.float32, torch.float64):
        probe = torch.ones(1, *shape, dtype=dtype)
        finite = torch.isfinite(degradation(probe)).all() & torch.isfinite(degradation.adjoint(probe)).all()
        if not bool(finite):
            raise ValueError(
                f"the operator {degradation.spec} gives NaN or infinite values on a {str(dtype)[6:]} image: "
                "its parameters are out of the range it can compute"
            )


def find_level(
    degradation: Degradation, process: CorruptionProcess, shape: Shape, *, tol: float = 1e-7, grid: int = 257
) -> float | None:
    """The smallest process time ``tau`` with ``C_tau = A`` (within ``tol``), or None.

    Generic, no operator-specific code: ``A`` and ``C_t`` are compared on random probe images
    (float64) over a grid of times, and the best grid time is refined by golden-section
    search on ``||C_t z - A z|| / ||A z||``. It finds a level for any operator family whose
    mismatch is unimodal near its level (blur widths, mask fractions, pixelation factors).
    """
    probes = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = degradation(probes)
    scale = target.flatten(1).norm(dim=1).clamp_min(1e-300)

    def mismatch(ts: Tensor) -> Tensor:
        z = probes.repeat(len(ts), 1, 1, 1)
        times = ts.repeat_interleave(len(probes))
        gap = (process.C(z, times) - target.repeat(len(ts), 1, 1, 1)).flatten(1).norm(dim=1)
        return (gap / scale.repeat(len(ts))).reshape(len(ts), len(probes)).max(dim=1).values

    ts = torch.linspace(0, 1, grid, dtype=torch.float64)
    errors = mismatch(ts)
    best = int(errors.argmin())
    if float(errors[best]) <= tol:
        return float(ts[best])
    lo, hi = float(ts[max(best - 1, 0)]), float(ts[min(best + 1, grid - 1)])
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        ea, eb = mismatch(torch.tensor([a, b], dtype=torch.float64)).tolist()
        lo, hi = (lo, b) if ea <= eb else (a, hi)
    tau = (lo + hi) / 2
    return tau if float(mismatch(torch.tensor([tau], dtype=torch.float64))) <= tol else None


# ---- the restoration-only names ------------------------------------------------------------------


def _level(values: dict[str, float], shape: Shape, process: CorruptionProcess | None) -> Built:
    if process is None:
        raise ValueError("level:t=... is the model's own C_t: it needs the model's process")
    tau = values["t"]
    if not 0 < tau <= 1:
        raise ValueError(f"level:t must lie in (0, 1], got {tau:g}")
    source = float(process.time(tau, torch.zeros(1, *shape, dtype=torch.float64)))
    return process.operator, source, tau


register_degradation("level", _level, {"t": REQUIRED}, help="t=0.6")
