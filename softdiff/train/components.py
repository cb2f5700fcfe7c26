"""Config sections built from the registries: a name, and settings validated against its entry's ``Params``.

Shared by the run config and the CLI's help, so the names a flag lists and the names the
config accepts are the same registries. An unregistered name is left for
:meth:`~softdiff.train.config.RunConfig.load_plugins` (its module may register it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ..registry import Registry, params_model

__all__ = ["choices", "settings_of", "legacy_settings"]


def choices(registry: Registry[Any]) -> str:
    """The registered names, for help text and errors: ``a | b | c``."""
    return " | ".join(registry.names())


def settings_of(registry: Registry[Any], name: str, given: Mapping[str, Any] | BaseModel | None, where: str) -> Any:
    """``given`` checked against ``name``'s ``Params`` and dumped with every default; unchanged if unregistered.

    An invalid setting is one ``ValueError`` that names it (``objective.params.anchor: ...``).
    """
    if name not in registry:
        return dict(given.model_dump() if isinstance(given, BaseModel) else given or {})
    try:
        return registry.params(name, given).model_dump(mode="json")
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}{'.' + key if key else ''}: {first['msg']} ({registry.kind} {name!r})") from None


def legacy_settings(
    data: dict[str, Any], registry: Registry[Any], name: str, key: str, legacy: Mapping[str, Any]
) -> dict[str, Any]:
    """Pop the flat keys of older configs from ``data`` and return ``data[key]`` with them merged in.

    A flat key wins over ``data[key]`` (it is the explicit one, e.g. ``--set objective.anchor=2``).
    One that the entry's ``Params`` lacks is dropped when it holds its "off" value in ``legacy``
    (``None``: any value, as older configs ignored it), else refused.
    """
    settings = dict(data.get(key) or {})
    fields = params_model(registry.get(name)).model_fields if name in registry else None
    for flat, off in legacy.items():
        if flat not in data:
            continue
        value = data.pop(flat)
        if fields is None or flat in fields:
            settings[flat] = value
        elif off is not None and value != off:
            raise ValueError(f"{flat} is no setting of the {registry.kind} {name!r} (objective.{flat}={value!r})")
    return settings
