"""An operator object written down as a spec that rebuilds it in a fresh process (``train(corruption=op)``).

The written spec names each part's class (``module:Class``, or a plugin file) with the
arguments its constructor got, so a composition built in Python (``Mask() @
GaussianBlur(0.01, 3.0)``) becomes ``mod:GaussianBlur:...+mod:Mask:...``, and the CLI can
load the run. Only an argument that is no JSON value (a schedule object, a tensor) and not
its default leaves an operator without a spec.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

from .base import LinearCorruption
from .config import CorruptionConfig
from .plugins import _FILES
from .record import operator_record, record_difference
from .spec import format_part

__all__ = ["reference_of"]


def _jsonable(value: object) -> bool:
    try:
        return json.loads(json.dumps(value, allow_nan=False)) == value
    except (TypeError, ValueError):
        return False


def reference_of(op: LinearCorruption) -> tuple[str, dict[str, Any]] | str:
    """``(spec, params)`` that rebuild ``op`` in a fresh process, or the reason they cannot be written down.

    Works for an operator whose class lives in an importable module (or a plugin file) and
    whose constructor arguments (recorded by the base class) are JSON values; an argument
    left at its default may be any object. A composition is written as a chain of parts,
    each with its arguments in the spec (``mod:A:k=1+mod:B``). The rebuilt operator must
    have ``op``'s record (:func:`~softdiff.corrupt.record.operator_record`).
    """
    parts = op.parts()
    found = [_part_reference(part) for part in parts]
    for why in found:
        if isinstance(why, str):
            return why if len(parts) == 1 else f"one of its parts cannot be written down: {why}"
    references = [ref for ref in found if not isinstance(ref, str)]
    if len(parts) == 1:
        spec, params = references[0]
    else:
        spec, params = "+".join(format_part(ref, args) for ref, args in references), {}
    try:
        rebuilt = CorruptionConfig(spec=spec, params=params).operator((1, 1))
    except (ValueError, TypeError) as err:
        return f"rebuilding it from {spec} fails ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    difference = record_difference(operator_record(rebuilt), operator_record(op))
    if difference is not None:
        return f"rebuilding it from {spec} gives another operator ({difference})"
    return spec, params


def _part_reference(op: LinearCorruption) -> tuple[str, dict[str, Any]] | str:
    """``(module:Class, arguments)`` of one operator (not a composition), or why it has none."""
    cls = type(op)
    module = sys.modules.get(cls.__module__)
    if cls.__module__ == "__main__" or module is None:
        return f"its class {cls.__name__} is defined in a script or notebook (__main__), not in an importable module"
    if "." in cls.__qualname__:
        return f"its class {cls.__qualname__} is not defined at the top level of its module"
    file = getattr(module, "__file__", None)
    ref = (
        f"{Path(file).resolve()}:{cls.__name__}"
        if module in _FILES.values() and file
        else f"{cls.__module__}:{cls.__name__}"
    )
    signature = inspect.signature(cls.__init__)
    recorded = getattr(op, "_init_args", None)
    args: dict[str, Any] = {}
    for p in list(signature.parameters.values())[1:]:
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        if recorded is not None and p.name in recorded:
            value, where = recorded[p.name], "was given"
        elif p.name in vars(op):
            value, where = vars(op)[p.name], "is kept"
        elif p.default is not p.empty:
            continue
        else:
            return f"its parameter {p.name!r} is not kept as a public attribute"
        value = list(value) if isinstance(value, tuple) else value
        if value is None and p.default is None:
            continue  # left at its default (an optional schedule, say): the spec need not say it
        if _jsonable(value):
            args[p.name] = value
        elif p.default is p.empty or value is not p.default:
            return f"its parameter {p.name!r} {where} as {_brief(value)}, which is not a JSON value"
    return ref, args


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
