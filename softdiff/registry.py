"""One registry design for everything chosen by name: operators, objectives, samplers, data sets.

A :class:`Registry` maps identifier names to entries. Registering a name that is already
taken is an error unless ``replace=True`` is passed: a plugin that registers ``"blur"``
must not silently replace the built-in blur (``blur+blur`` would then be two of its own).
An unknown name gets one ``ValueError`` line that lists the known ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


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

    def get(self, name: str) -> T:
        """The entry of ``name``, or a one-line ``ValueError`` listing the known names."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")
        return self._entries[name]

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
