"""Runs the Python blocks of README.md and docs/*.md so examples cannot rot.

Every fenced block tagged ``python`` runs, unless the line just before its fence is the
marker ``<!-- not run: REASON -->`` (the reason is required). The blocks of one page run in
order in one namespace, like a notebook, in a folder of their own (``workdir``), so files
they write land there.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = ("README.md", *(f"docs/{path.name}" for path in sorted(DOCS.glob("*.md"))))
TUTORIAL = "docs/tutorial-new-corruption.md"

_FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)")
_MARKER = re.compile(r"^<!--\s*not run:(.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    skip: str | None  # the reason of a `<!-- not run: ... -->` marker just before the fence


def blocks(page: str) -> list[Block]:
    """Every fenced code block of ``page`` (a path relative to the repository root), in order."""
    lines = (ROOT / page).read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, ticks, language = i, fence.group(1), fence.group(2).lower()
        i += 1
        while i < len(lines) and not lines[i].startswith(ticks):
            i += 1
        before = lines[start - 1].strip() if start > 0 else ""
        marker = _MARKER.match(before)
        if marker and not marker.group(1).strip():
            raise ValueError(f"{page}:{start}: a `not run` marker needs a reason")
        code = "\n".join(lines[start + 1 : i]) + "\n"
        found.append(Block(page, start + 1, language, code, marker.group(1).strip() if marker else None))
        i += 1
    return found


def python_blocks(page: str) -> list[str]:
    """The code of the ``python`` blocks of ``docs/<page>``, in order."""
    return [b.code for b in blocks(f"docs/{page}") if b.language == "python"]


def run_page(page: str, workdir: Path) -> dict[str, object]:
    """Execute the runnable ``python`` blocks of ``page`` in ``workdir``; return their namespace."""
    namespace: dict[str, object] = {"__name__": "doc_example"}
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        for block in blocks(page):
            if block.language == "python" and block.skip is None:
                code = "\n" * block.line + block.code  # tracebacks show the page's own line numbers
                exec(compile(code, str(ROOT / page), "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace


@functools.cache
def tutorial_namespace() -> dict[str, object]:
    """The tutorial's globals (``FadeToGrey``, ...), executed once: it registers a spec name."""
    return run_page(TUTORIAL, Path(tempfile.mkdtemp(prefix="softdiff-tutorial-")))
