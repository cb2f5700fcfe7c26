"""Checks shared by every pydantic config of softdiff (corruption, network, run)."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel

__all__ = ["refuse_bool_numbers"]


def refuse_bool_numbers(cls: type[BaseModel], data: Any) -> Any:
    """A ``before`` model validator: ``true`` given for a number field is refused, not read as 1.

    pydantic's lax mode turns ``steps = true`` into ``steps = 1``; a config file or
    ``--set`` value of a bool where a count or a rate belongs is always a mistake.
    """
    if not isinstance(data, dict):
        return data
    for name, value in data.items():
        field = cls.model_fields.get(name)
        if isinstance(value, bool) and field is not None and _numeric(field.annotation):
            raise ValueError(f"{name} must be a number, not the boolean {str(value).lower()}")
    return data


def _numeric(annotation: Any) -> bool:
    """Whether a field's type admits a number and no bool (``int``, ``float | None``, ...)."""
    types = get_args(annotation) or (annotation,)
    if bool in types:
        return False
    return any(t in (int, float) or (get_args(t) and _numeric(t)) for t in types)
