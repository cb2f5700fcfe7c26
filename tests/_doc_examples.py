"""Runs the code of the documentation pages so examples cannot rot."""

from __future__ import annotations

import functools
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_blocks(page: str) -> list[str]:
    """The ```python blocks of ``docs/<page>`` in order."""
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.DOTALL)


@functools.cache
def tutorial_namespace() -> dict[str, object]:
    """Execute the tutorial's code block once and return its globals (``FadeToGrey``, ...)."""
    namespace: dict[str, object] = {"__name__": "tutorial"}
    exec(compile(python_blocks("tutorial-new-corruption.md")[0], "tutorial-new-corruption.md", "exec"), namespace)
    return namespace
