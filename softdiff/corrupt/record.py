"""An operator's identity: the arguments it was constructed with, recorded (diffusers' ``register_to_config``).

Every :class:`~softdiff.corrupt.LinearCorruption` keeps the arguments its constructor was
called with (``_init_args``, captured by the base class with :func:`~softdiff.corrupt.base.capture_init_args`,
so a plugin does nothing).
:func:`operator_record` writes them down as JSON: a composition as the list of its parts
in the order they are applied, a tensor as its shape, dtype and SHA-256 digest (so a
changed kernel or one changed interior level is a different record, where ``repr`` showed
only the shape), and any other object (a schedule) as its class and state. A run stores
the record; loading it compares the operator it rebuilds against it, and
:func:`record_difference` names the first value that differs, in one line.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from typing import Any

import numpy as np
from torch import Tensor

from .base import INIT_ARGS, LinearCorruption

__all__ = ["operator_record", "operator_identity", "record_difference"]


def class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def operator_record(op: LinearCorruption) -> dict[str, Any]:
    """The JSON record of ``op``: ``{"class", "args"}``, or ``{"compose": [...]}`` for a chain (applied order)."""
    parts = op.parts()
    if len(parts) > 1 or parts[0] is not op:
        return {"compose": [operator_record(part) for part in parts]}
    args = getattr(op, INIT_ARGS, None)
    if args is None:  # constructed without running an __init__ (e.g. copy.copy of an object without one)
        args = {k: v for k, v in vars(op).items() if not k.startswith("_")}
    return {"class": class_name(type(op)), "args": {str(k): _encode(v) for k, v in args.items()}}


def operator_identity(op: LinearCorruption) -> str:
    """A SHA-256 of :func:`operator_record`: equal exactly when every recorded value (and tensor byte) is."""
    text = json.dumps(operator_record(op), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"float": repr(value)}
        return int(value) if value.is_integer() and abs(value) < 2**53 else value  # 10 and 10.0 are one value
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, Tensor):
        data = value.detach().cpu().contiguous()
        digest = hashlib.sha256(data.numpy().tobytes() if data.numel() else b"").hexdigest()
        return {"tensor": digest, "shape": list(data.shape), "dtype": str(data.dtype).removeprefix("torch.")}
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return {
            "array": hashlib.sha256(data.tobytes()).hexdigest(),
            "shape": list(data.shape),
            "dtype": str(data.dtype),
        }
    if isinstance(value, LinearCorruption):
        return operator_record(value)
    if isinstance(value, type) or inspect.isroutine(value):
        return {"callable": f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"}
    state = getattr(value, "__dict__", None)
    if state is None:
        return {"object": class_name(type(value)), "repr": repr(value)}
    return {"object": class_name(type(value)), "state": {k: _encode(v) for k, v in sorted(state.items())}}


def record_difference(here: Any, recorded: Any, path: str = "operator") -> str | None:
    """The first place where two records differ, as ``path: X here, Y recorded``; None when they are equal."""
    if isinstance(here, dict) and isinstance(recorded, dict):
        if "tensor" in here and "tensor" in recorded and here != recorded:
            if here["shape"] == recorded["shape"] and here["dtype"] == recorded["dtype"]:
                digests = f"digest {here['tensor'][:12]} here, {recorded['tensor'][:12]} recorded"
                return f"{path}: the tensor's values differ ({digests})"
            a, b = (f"{r['shape']} {r['dtype']}" for r in (here, recorded))
            return f"{path}: shape {a} here, {b} recorded"
        if here.keys() != recorded.keys():
            extra, missing = sorted(here.keys() - recorded.keys()), sorted(recorded.keys() - here.keys())
            said = [f"{', '.join(extra)} only here"] if extra else []
            said += [f"{', '.join(missing)} only in the record"] if missing else []
            return f"{path}: {'; '.join(said)}"
        for key in here:
            found = record_difference(here[key], recorded[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(here, list) and isinstance(recorded, list):
        if len(here) != len(recorded):
            return f"{path}: {len(here)} entries here, {len(recorded)} recorded"
        for i, (a, b) in enumerate(zip(here, recorded, strict=True)):
            found = record_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if here != recorded or type(here) is not type(recorded):
        return f"{path}: {_short(here)} here, {_short(recorded)} recorded"
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."
