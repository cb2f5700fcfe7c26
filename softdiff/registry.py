"""One registry design for everything chosen by name: operators, objectives, samplers, data sets.

An entry may own a pydantic ``Params`` model (an attribute named ``Params``): the settings a
config section holds for it. :meth:`Registry.params` validates a section's settings against
it, so a plugin's entry is configured and checked exactly like a built-in one. An entry
without ``Params`` takes no settings.

A :class:`Registry` maps identifier names to entries. Registering a name that is already
taken is an error unless ``replace=True`` is passed: a plugin that registers ``"blur"``
must not silently replace the built-in blur (``blur+blur`` would then be two of its own).
An unknown name gets one ``ValueError`` line that lists the known ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = ["Registry", "NoParams", "params_model"]

T = TypeVar("T")


class NoParams(BaseModel):
    """The settings of an entry that takes none: any key given is a mistake."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def params_model(entry: object) -> type[BaseModel]:
    """The pydantic model of an entry's settings: its ``Params``, else :class:`NoParams`."""
    model = getattr(entry, "Params", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else NoParams


class Registry(Generic[T]):
    """Named entries of one ``kind`` (``"corruption"``, ``"sampler"``, ...), each name an identifier.

    Data-set names may hold ``-`` (``fashion-mnist``): ``dashes=True`` allows it.
    """

    def __init__(self, kind: str, *, dashes: bool = False) -> None:
        self.kind = kind
        self._dashes = dashes
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> None:
        """Add ``name``; a taken name is an error unless ``replace=True`` (then the new entry wins)."""
        word = name.replace("-", "_") if self._dashes else name
        if not isinstance(name, str) or not word.isidentifier():
            raise ValueError(f"{self.kind} names must be identifiers, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(
                f"{self.kind} {name!r} is already registered; pass replace=True to replace it, or choose another name"
            )
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        """Take ``name`` back (a test or notebook that registered it); an unknown name is an error."""
        self.get(name)
        del self._entries[name]

    def get(self, name: str) -> T:
        """The entry of ``name``, or a one-line ``ValueError`` listing the known names."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")
        return self._entries[name]

    def params(self, name: str, given: Mapping[str, Any] | BaseModel | None = None) -> BaseModel:
        """``given`` validated against the ``Params`` of ``name``'s entry (its defaults fill the rest)."""
        model = params_model(self.get(name))
        if isinstance(given, BaseModel):
            given = given.model_dump()
        return model.model_validate(dict(given or {}))

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
