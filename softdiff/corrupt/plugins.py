"""Plugin operators: a user's ``LinearCorruption`` subclass named in a spec string.

A spec part holding a ``:`` names a class instead of a registered operator:

* ``module.path:ClassName`` imports ``module.path`` (it must be on ``PYTHONPATH``);
* ``path/to/file.py:ClassName`` loads that file (a part ending in ``.py`` or holding a ``/``);
  the path is made absolute, so a run config records where the code was.

Plugins compose with built-ins like any name: ``blur+mymod:Pixelate`` blurs, then applies
the plugin. A file path may not hold ``+`` or ``:`` (Windows drive letters are not supported).

Constructor arguments come from ``corruption.params`` and are checked against a pydantic
model: the class's own ``Params`` (a ``BaseModel``) if it declares one, else one built
from the type hints of ``__init__``. A module is imported only when a spec names it, and
only when the operator is built (a config file or ``config.json`` is read without running
any code); see docs/operators.md, "Plugin operators", for what that means for trust.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .base import LinearCorruption

__all__ = [
    "PluginRef",
    "is_plugin",
    "parse_plugin",
    "load_plugin",
    "params_model",
    "validate_params",
    "split_params",
    "plugin_roots",
    "plugin_failure",
]


@dataclass(frozen=True)
class PluginRef:
    """``target:name``: a dotted module (``is_file=False``) or an absolute ``.py`` path, and a class name."""

    target: str
    name: str
    is_file: bool

    def __str__(self) -> str:
        return f"{self.target}:{self.name}"


def is_plugin(part: str) -> bool:
    """True for a spec part that names a class (``module:Class`` or ``file.py:Class``)."""
    return ":" in part


def parse_plugin(part: str) -> PluginRef:
    """``"mymod:Pixelate"`` or ``"ops/my.py:Pixelate"`` -> :class:`PluginRef` (syntax only, nothing imported)."""
    target, _, name = (s.strip() for s in part.strip().rpartition(":"))
    if not name.isidentifier():
        raise ValueError(
            f"plugin reference {part!r} must end in :ClassName (module.path:ClassName or file.py:ClassName)"
        )
    if target.endswith(".py") or "/" in target or "\\" in target:
        if not target.endswith(".py"):
            raise ValueError(f"plugin file {target!r} in {part!r} must be a .py file")
        return PluginRef(str(Path(target).expanduser().resolve()), name, True)
    if not target or not all(word.isidentifier() for word in target.split(".")):
        raise ValueError(f"plugin reference {part!r}: {target!r} is neither a dotted module path nor a .py file")
    return PluginRef(target, name, False)


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and (name == err.name or name.startswith(err.name + ".")):
            raise ValueError(
                f"cannot import plugin module {name!r} (no module named {err.name!r}); put the folder that holds it "
                f"on PYTHONPATH (PYTHONPATH=/path/to/folder softdiff ...)"
            ) from None
        raise ValueError(f"plugin module {name!r} failed to import: {err}") from None
    except (Exception, SystemExit, KeyboardInterrupt) as err:  # the plugin's own code failed: one line, no traceback
        raise ValueError(
            f"plugin module {name!r} {_import_failure(err)} (run `python -c 'import {name}'` to see the traceback)"
        ) from None


def _import_failure(err: BaseException) -> str:
    """What a plugin's code did on import: ``called sys.exit(3)``, ``raised KeyboardInterrupt``, ``raised X: why``."""
    if isinstance(err, SystemExit):
        return f"called sys.exit({err.code!r}) on import"
    if isinstance(err, KeyboardInterrupt):
        return "raised KeyboardInterrupt on import (or Ctrl-C was pressed while it loaded)"
    first = str(err).splitlines()[0] if str(err) else ""
    return f"raised {type(err).__name__} on import: {first}"


_FILES: dict[str, ModuleType] = {}


def _import_file(path: str) -> ModuleType:
    """Load a ``.py`` file once per process, as a module named after its path (so classes pickle and compare)."""
    if path in _FILES:
        return _FILES[path]
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"plugin file {path} does not exist")
    digest = hashlib.sha256(path.encode()).hexdigest()[:10]
    module_name = f"softdiff_plugin_{re.sub(r'[^0-9a-zA-Z_]', '_', file.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ValueError(f"plugin file {path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit, KeyboardInterrupt) as err:
        del sys.modules[module_name]
        raise ValueError(
            f"plugin file {path} {_import_failure(err)} (run `python {path}` to see the traceback)"
        ) from None
    _FILES[path] = module
    return module


_PLUGIN_FILES: dict[str, str] = {}  # source file of every plugin class loaded -> the reference that named it


def plugin_failure(err: BaseException) -> str | None:
    """One line naming the plugin whose code raised ``err`` (its innermost frame in a plugin's file), else None.

    A plugin's ``forward`` that raises deep inside ``corrupt``, ``schedule`` or a sampler is
    the plugin's error, not softdiff's: the CLI reports it with the class, the line and the
    message instead of a traceback through softdiff's code.
    """
    found = None
    tb = err.__traceback__
    while tb is not None:
        if os.path.realpath(tb.tb_frame.f_code.co_filename) in _PLUGIN_FILES:
            found = tb
        tb = tb.tb_next
    if found is None:
        return None
    frame = found.tb_frame
    owner = frame.f_locals.get("self")
    name = (
        type(owner).__name__
        if isinstance(owner, LinearCorruption)
        else _PLUGIN_FILES[os.path.realpath(frame.f_code.co_filename)]
    )
    where = f"{Path(frame.f_code.co_filename).name}:{found.tb_lineno}, in {frame.f_code.co_name}"
    first = str(err).splitlines()[0] if str(err) else ""
    return f"the plugin operator {name} failed ({where}): {type(err).__name__}: {first}; fix the plugin's code"


def load_plugin(ref: PluginRef) -> type[LinearCorruption]:
    """Import the module or file of ``ref`` and return its class, a ``LinearCorruption`` subclass."""
    module = _import_file(ref.target) if ref.is_file else _import_module(ref.target)
    where = f"plugin file {ref.target}" if ref.is_file else f"plugin module {ref.target!r}"
    cls = getattr(module, ref.name, None)
    if cls is None:
        found = sorted(
            k
            for k, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, LinearCorruption) and v.__module__ == module.__name__
        )
        hint = f"; it defines {', '.join(found)}" if found else "; it defines no LinearCorruption subclass"
        raise ValueError(f"{where} has no class {ref.name!r}{hint}")
    if not (isinstance(cls, type) and issubclass(cls, LinearCorruption)):
        what = "another class" if isinstance(cls, type) else f"the {type(cls).__name__} {cls!r}"
        raise ValueError(
            f"{ref} is not a LinearCorruption subclass (it is {what}); subclass softdiff.corrupt.LinearCorruption"
        )
    source = inspect.getsourcefile(cls)
    if source is not None:
        _PLUGIN_FILES[os.path.realpath(source)] = ref.name
    return cls


def _numeric(annotation: object) -> bool:
    text = str(annotation)
    return annotation is not Any and "bool" not in text and ("int" in text or "float" in text)


def params_model(cls: type[LinearCorruption]) -> type[BaseModel]:
    """The pydantic model of ``cls``'s parameters: its ``Params`` if declared, else built from ``__init__``."""
    declared = getattr(cls, "Params", None)
    if isinstance(declared, type) and issubclass(declared, BaseModel):
        return declared
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve: check names, not types
        hints = {}
    fields: dict[str, Any] = {}
    extra = "forbid"
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind is p.VAR_KEYWORD:
            extra = "allow"
        elif p.kind is p.POSITIONAL_ONLY and p.default is p.empty:
            raise ValueError(
                f"{cls.__name__}.__init__ has the positional-only parameter {p.name!r}: params are passed by name"
            )
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            fields[p.name] = (hints.get(p.name, Any), ... if p.default is p.empty else p.default)
    config = ConfigDict(extra=extra, arbitrary_types_allowed=True, allow_inf_nan=False)  # type: ignore[typeddict-item]
    return create_model(f"{cls.__name__}Params", __config__=config, **fields)


def validate_params(cls: type[LinearCorruption], ref: str, params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``cls`` from ``params``, or a one-line ``ValueError`` naming the parameter."""
    model = params_model(cls)
    known = ", ".join(model.model_fields) or "none"
    for name, value in params.items():
        field = model.model_fields.get(name)
        if field is None and model.model_config.get("extra") != "allow":  # a declared model may ignore extras
            raise ValueError(f"corruption.params.{name}: {ref} has no parameter {name!r} (its parameters: {known})")
        if isinstance(value, bool) and field is not None and _numeric(field.annotation):
            raise ValueError(f"corruption.params.{name}: {ref} needs a number, not the boolean {str(value).lower()}")
    try:
        validated = model.model_validate(params)
    except ValidationError as err:
        first = err.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            message = f"{ref} has no parameter {name!r} (its parameters: {known})"
        elif first["type"] == "missing":
            message = f"{ref} needs this parameter (its parameters: {known})"
        else:
            message = f"{first['msg']} (parameter of {ref})"
        raise ValueError(f"corruption.params.{name}: {message}") from None
    return dict(validated)


def split_params(refs: list[PluginRef], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Each plugin's share of ``corruption.params``.

    One plugin: ``params`` are its arguments, or one table under its class name (so a
    config written for several plugins reads the same). Several: ``params`` holds one table
    per class name (``[corruption.params.Pixelate]``); a plugin without a table gets its
    defaults.
    """
    if not refs:
        if params:
            raise ValueError(
                "corruption.params holds constructor arguments of plugin operators, and the spec names none"
            )
        return []
    if len(refs) == 1:
        keyed = list(params) == [refs[0].name] and isinstance(params[refs[0].name], dict)
        return [dict(params[refs[0].name]) if keyed else dict(params)]
    names = [ref.name for ref in refs]
    if not params:
        return [{} for _ in refs]  # arguments, if any, are in the spec's parts
    if len(set(names)) < len(names):
        raise ValueError(
            f"the spec names two plugin classes called the same ({', '.join(names)}); params are keyed by class name"
        )
    for key, value in params.items():
        if key not in names:
            raise ValueError(
                f"corruption.params.{key}: with several plugins, params hold one table per class ({', '.join(names)})"
            )
        if not isinstance(value, dict):
            raise ValueError(
                f"corruption.params.{key} must be a table of {key}'s arguments (several plugins in the spec)"
            )
    return [dict(params.get(name, {})) for name in names]


def plugin_roots(refs: list[PluginRef]) -> list[str]:
    """The ``sys.path`` folders that hold the plugin modules (a relaunched process puts them on ``PYTHONPATH``)."""
    roots: list[str] = []
    for ref in refs:
        if ref.is_file:
            continue
        top = _import_module(ref.target.split(".")[0])
        if getattr(top, "__file__", None):
            file = Path(top.__file__).resolve()  # type: ignore[arg-type]
            root = file.parent.parent if hasattr(top, "__path__") else file.parent
        else:  # a namespace package
            root = Path(next(iter(top.__path__))).resolve().parent
        if str(root) not in roots:
            roots.append(str(root))
    return roots
