"""The one spec grammar of operators, for training corruptions and restoration operators alike.

A spec is a ``+``-separated chain of parts, applied left to right::

    spec   := part ("+" part)*
    part   := ref [":" params]
    ref    := name | module.path ":" Class | path/to/file.py ":" Class
    params := key "=" value ("," key "=" value)*

``blur``, ``blur:sigma_max=5``, ``mymod:MyOp``, ``ops/my.py:MyOp:k=3,t=0.3`` and
``motion:t=0.5`` are parts. A value is JSON when it reads as JSON (``2``, ``0.5``,
``true``, ``[0.3, 0.6, 0.1]``, ``"text"``) and a bare string otherwise (``kind=box``); a
comma inside brackets does not split. The last ``:`` segment is the parameters exactly
when it holds an ``=``, so a plugin reference and a named part with parameters never read
alike. The key ``t`` freezes an operator at one time: restoration operators take it
(default 1), training corruptions refuse it (they span every time).

Nothing here imports a plugin or knows an operator: :mod:`softdiff.corrupt.config` checks
names and parameters against the registry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SpecPart", "split_spec", "split_part", "format_part", "MAX_SPEC_PARTS", "TIME_KEY"]

MAX_SPEC_PARTS = 16  # a chain of hundreds of operators is a typo, and nests Compose past Python's recursion limit
TIME_KEY = "t"


@dataclass(frozen=True)
class SpecPart:
    """One part of a spec: the operator's name or plugin reference, and the parameters written after it."""

    ref: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_plugin(self) -> bool:
        return ":" in self.ref

    def __str__(self) -> str:
        return format_part(self.ref, self.params)


def split_spec(spec: str) -> list[SpecPart]:
    """``"blur:sigma_max=5+mask"`` -> its parts; a one-line ``ValueError`` says what is malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("an operator spec must be a non-empty string such as 'blur' or 'blur+mask'")
    texts = _top_level_split(spec, "+")
    if len(texts) > MAX_SPEC_PARTS:
        raise ValueError(f"a spec chains at most {MAX_SPEC_PARTS} operators, {spec[:40]!r}... has {len(texts)}")
    return [_split_part(text.strip(), spec) for text in texts]


def split_part(text: str, kind: str) -> SpecPart:
    """One ``name[:key=value,...]`` part in this grammar, for other things chosen by name (``kind``: "grid").

    A ``+`` has no meaning here, and errors name ``kind`` instead of an operator spec.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a {kind} must be a non-empty string")
    return _split_part(text.strip(), text, kind)


def _split_part(text: str, spec: str, kind: str = "operator spec") -> SpecPart:
    if not text:
        raise ValueError(f"empty part in the spec {spec!r} (two '+' in a row, or one at an end)")
    equals = text.find("=")  # a reference holds no '=': the parameters start at the last ':' before the first one
    if equals < 0:
        return SpecPart(text)
    colon = text.rfind(":", 0, equals)
    if colon < 0:
        raise ValueError(f"bad {kind} {spec!r}: parameters follow the name after ':' (e.g. blur:sigma=2)")
    return SpecPart(text[:colon].strip(), _parse_params(text[colon + 1 :], text, spec, kind))


def _parse_params(text: str, part: str, spec: str, kind: str = "operator spec") -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in filter(str.strip, _top_level_split(text, ",")):
        key, eq, raw = (s.strip() for s in item.partition("="))
        if not eq or not key.isidentifier():
            raise ValueError(f"bad {kind} {spec!r}: {item.strip()!r} in {part!r} is not key=value")
        if key in params:
            raise ValueError(f"bad {kind} {spec!r}: {key} is given twice in {part!r}")
        params[key] = _value(raw, key, spec, kind)
    return params


def _top_level_split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside brackets and quotes (``weights=[0.3,0.6,0.1],seed=2`` is two items)."""
    items, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "[{":
            depth += 1
        elif not quoted and char in "]}":
            depth -= 1
        elif not quoted and depth == 0 and char == separator:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def _value(raw: str, key: str, spec: str, kind: str = "operator spec") -> Any:
    if not raw:
        raise ValueError(f"bad {kind} {spec!r}: {key}= has no value")
    try:
        number = float(raw)
    except ValueError:
        number = 0.0
    if not math.isfinite(number):  # nan, inf: Python reads them, JSON does not
        raise ValueError(f"bad {kind} {spec!r}: {key} must be finite, got {raw}")
    try:
        value = json.loads(raw)
    except ValueError:
        return raw  # a bare word: kind=box, border=reflect
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"bad {kind} {spec!r}: {key} must be finite, got {raw}")
    return value


def format_part(ref: str, params: dict[str, Any]) -> str:
    """The text of a part (``split_spec`` reads it back): ``ref`` or ``ref:key=value,...``."""
    if not params:
        return ref
    return ref + ":" + ",".join(f"{k}={_format_value(v)}" for k, v in params.items())


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value).replace("e+", "e")  # JSON reads 1e308; a '+' would split the spec
    if isinstance(value, str) and value and all(c.isalnum() or c in "_-." for c in value):
        try:
            json.loads(value)
        except ValueError:
            return value  # a bare word reads back as itself
    return json.dumps(value, separators=(",", ":"), allow_nan=False)
