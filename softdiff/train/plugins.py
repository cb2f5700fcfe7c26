"""Component plugins: modules a run names in ``plugins``, imported so they can register components.

A module registers objectives, weightings, t-samplers, parameterisations or networks as it
is imported (``register_objective("mine", Mine)``). Only modules named explicitly are ever
imported: a dotted module on ``PYTHONPATH`` or a ``.py`` file (made absolute, so the run's
config records where the code was), imported the way plugin operators are
(:mod:`softdiff.corrupt.plugins`) and only when the run is built, never when a config is read.
"""

from __future__ import annotations

from pathlib import Path

from ..corrupt.plugins import _import_file, _import_module

__all__ = ["plugin_target", "import_plugins"]


def plugin_target(target: str) -> str:
    """A ``plugins`` entry checked for form (nothing imported): a dotted module, or an absolute ``.py`` path."""
    target = target.strip()
    if target.endswith(".py") or "/" in target or "\\" in target:
        if not target.endswith(".py"):
            raise ValueError(f"plugin file {target!r} must be a .py file")
        return str(Path(target).expanduser().resolve())
    if not target or not all(word.isidentifier() for word in target.split(".")):
        raise ValueError(f"plugin {target!r} is neither a dotted module path nor a .py file")
    return target


def import_plugins(targets: list[str]) -> None:
    """Import every named module (once per process); a failure is a one-line ``ValueError``."""
    for target in targets:
        if target.endswith(".py"):
            _import_file(target)
        else:
            _import_module(target)
