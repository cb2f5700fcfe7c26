"""The package has no import cycle, deferred imports included.

The graph is read from the source (no module is imported): an edge ``a -> b`` for every
``import`` of a softdiff module by another, at module level *or inside a function* (a
deferred import still ties the two modules into one), except under ``if TYPE_CHECKING:``.
``from .x import y`` points at the submodule ``x.y`` when there is one, else at ``x``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "softdiff"


def modules(package: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package ``__init__``) for every module under ``package``."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(nodes: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in nodes:
        if isinstance(node, ast.If) and _type_checking(node):
            yield from _imports(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for child in ast.iter_child_nodes(node):  # bodies of functions, classes, if/try/with/...
            if isinstance(child, ast.stmt):
                yield from _imports([child])
            elif isinstance(child, ast.excepthandler):
                yield from _imports(child.body)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    mods = modules(package)
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, (path, is_package) in mods.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        for node in _imports(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = here[: len(here) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of the graph, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and graph["softdiff.schedule.select"] >= {"softdiff.corrupt"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_corrupt_does_not_import_schedule() -> None:
    """``softdiff.schedule`` builds on ``softdiff.corrupt``; the reverse edge would be the start of a cycle."""
    graph = import_graph(PACKAGE)
    for name, targets in graph.items():
        if name.startswith("softdiff.corrupt"):
            assert not {t for t in targets if t.startswith("softdiff.schedule")}, name


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        # the shape of the old trainer <-> distributed cycle: one side defers its import into a function
        (
            {"a.py": "from .b import g\n", "b.py": "def g():\n    from .a import f\n    return f\n"},
            ["pkg.a", "pkg.b", "pkg.a"],
        ),
        (
            {"a.py": "import pkg.sub.c\n", "sub/__init__.py": "", "sub/c.py": "from .. import a\n"},
            ["pkg.a", "pkg.sub.c"],
        ),
        (
            {"a.py": "try:\n    from . import b\nexcept ImportError:\n    pass\n", "b.py": "from .a import x\n"},
            ["pkg.a"],
        ),
    ],
)
def test_a_planted_cycle_is_found(tmp_path: Path, files: dict[str, str], cycle: list[str]) -> None:
    package = _write(tmp_path / "pkg", {"__init__.py": "", **files})
    found = find_cycle(import_graph(package))
    assert found is not None and found[0] == found[-1] and set(cycle) <= set(found)


def test_type_checking_imports_and_other_packages_are_no_edges(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nimport torch\nif TYPE_CHECKING:\n    from .b import g\n",
        "b.py": "from .a import f\n",
    }
    package = _write(tmp_path / "pkg", files)
    assert import_graph(package) == {"pkg": set(), "pkg.a": set(), "pkg.b": {"pkg.a"}}
    assert find_cycle(import_graph(package)) is None
