"""The ``softdiff`` command line (Typer)."""

from .app import app, main

__all__ = ["app", "main"]
