"""Shared CLI plumbing: one-line errors for user mistakes, the console, data-set resolution."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from ..resources import describe_os_error

__all__ = ["console", "err_console", "user_errors", "fail"]

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., object])

# OSError: the machine's side of a user's request (a full disk, a read-only folder, a missing permission)
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _describe(err: BaseException) -> str:
    if isinstance(err, ValidationError):
        parts = []
        for e in err.errors():
            message = e["msg"].removeprefix("Value error, ")
            where = ".".join(str(p) for p in e["loc"])
            parts.append(f"{where}: {message}" if where else message)
        return "invalid configuration: " + "; ".join(parts)
    if isinstance(err, FileNotFoundError) and err.filename:
        return f"{err.filename} does not exist"
    if isinstance(err, OSError):
        return describe_os_error(err)
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def user_errors(command: F) -> F:
    """Turn user errors (bad values, missing files, invalid configs) into one line, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as err:  # ValidationError is a ValueError
            raise fail(_describe(err)) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", style="yellow")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def ensure_parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
