"""Shared CLI plumbing: one-line errors for user mistakes, the console, data-set resolution."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from ..corrupt import CorruptionConfig
from ..corrupt.plugins import plugin_failure
from ..resources import describe_os_error
from ..train.config import apply_overrides, load_config_file

__all__ = ["console", "err_console", "user_errors", "fail", "parse_set", "corruption_config", "import_named_plugins"]

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., object])

# OSError: the machine's side of a user's request (a full disk, a read-only folder, a missing permission)
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


THREADS_HELP = "CPU threads for torch (default: torch's choice; on a busy machine 1 is faster)."
# one wording for the data's shape wherever a command reads a data set (fixed-size sets only check it)
IMAGE_SIZE_HELP = "Image side for --dataset folder (default: 32); a fixed-size data set must match it."
IMAGE_CHANNELS_HELP = "Image channels for --dataset folder, 1 (grey) or 3 (RGB) (default: the loader's)."
SAMPLING_PLUGIN_HELP = (
    "Module (dotted, on PYTHONPATH) or file.py that registers samplers or time grids; imported before the "
    "names are checked (repeatable). A run's own plugins are imported when it loads."
)


def import_named_plugins(targets: list[str]) -> None:
    """Import the modules a command names with ``--plugin`` (only those), so their components are known."""
    from ..train.plugins import import_plugins, plugin_target

    import_plugins([plugin_target(target) for target in targets])


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (None: leave torch's choice)."""
    if threads is not None:
        torch.set_num_threads(threads)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # user text: no markup
    return typer.Exit(code)


def _describe(err: BaseException) -> str:
    if isinstance(err, ValidationError):
        parts = []
        for e in err.errors():
            message = e["msg"].replace("Value error, ", "")  # nested sections repeat it
            where = ".".join(str(p) for p in e["loc"])
            parts.append(f"{where}: {message}" if where else message)
        return "invalid configuration: " + "; ".join(parts)
    if isinstance(err, FileNotFoundError) and err.filename:
        return f"{err.filename} does not exist"
    if isinstance(err, OSError):
        return describe_os_error(err)
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _out_of_memory(err: BaseException) -> bool:
    """torch's CUDA out-of-memory error, or the CPU allocator's refusal (a plain ``RuntimeError``)."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(err)


def user_errors(command: F) -> F:
    """Turn user errors (bad values, missing files, invalid configs, a plugin's failure) into one line, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except Exception as err:
            plugin = plugin_failure(err)  # a plugin's own code raised: name it, whatever it raised
            if plugin is not None:
                raise fail(plugin) from None
            if isinstance(err, USER_ERRORS):  # ValidationError is a ValueError
                raise fail(_describe(err)) from None
            if _out_of_memory(err):  # a size no check predicted: still the user's request, not a bug
                raise fail(
                    f"out of memory: {str(err).splitlines()[0]}; ask for less (fewer or smaller images)"
                ) from None
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted", style="yellow")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set optim.ema_decay=0.99`` -> ``{"optim.ema_decay": 0.99}`` (values parsed as JSON when possible)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE with a dotted key such as optim.ema_decay=0.99, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def corruption_config(
    spec: str | None, settings: list[str], config_file: Path | None = None, default: str = "blur"
) -> CorruptionConfig:
    """``--config``'s ``[corruption]`` table, ``--corruption`` and ``--set corruption.KEY=VALUE`` -> a checked config.

    The config file may be a run config (TOML, JSON, YAML) or a run's ``config.json``; its
    other sections are ignored. The plugins are imported and their params checked here,
    before any data is read.
    """
    base: dict[str, Any] = {"spec": default}
    if config_file is not None:
        table = load_config_file(config_file).get("corruption", {})
        if not isinstance(table, dict):
            raise ValueError(f"config file {config_file}: [corruption] must be a table")
        base.update(table)
    if spec is not None:
        base["spec"] = spec
    overrides = {}
    for key, value in parse_set(settings).items():
        if not key.startswith("corruption."):
            raise ValueError(f"--set here takes corruption.* keys (e.g. corruption.params.factor=4), got {key!r}")
        overrides[key.removeprefix("corruption.")] = value
    config = CorruptionConfig.model_validate(apply_overrides(base, overrides, keep_none=True))
    config.plugins()
    return config
