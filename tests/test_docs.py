"""Every Python block of README.md and docs/*.md runs, or says why not (see _doc_examples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _doc_examples import PAGES, TUTORIAL, Block, blocks, run_page, tutorial_namespace

WITH_PYTHON = [page for page in PAGES if any(b.language == "python" and b.skip is None for b in blocks(page))]


@pytest.mark.parametrize("page", WITH_PYTHON)
def test_the_python_blocks_of_a_page_run(page: str, run_dir: Path, tmp_path: Path) -> None:
    """The blocks run in order in a fresh folder where ``runs/NAME`` and ``runs/fashion-blur`` are a tiny run."""
    if page == TUTORIAL:
        assert tutorial_namespace()  # once per session: the page registers a spec name
        return
    (tmp_path / "runs").mkdir()
    for name in ("NAME", "fashion-blur"):
        (tmp_path / "runs" / name).symlink_to(run_dir, target_is_directory=True)
    run_page(page, tmp_path)


def test_every_python_block_is_run_or_says_why_not() -> None:
    every: list[Block] = [b for page in PAGES for b in blocks(page)]
    python = [b for b in every if b.language == "python"]
    assert len(WITH_PYTHON) >= 3 and len(python) >= 10  # the parser sees the pages' code
    skipped = [b for b in python if b.skip is not None]
    assert all(len(b.skip or "") > 10 for b in skipped), "give a reason in <!-- not run: REASON -->"
    assert len(skipped) <= len(python) // 3, "most examples should run"
    other_tags = [f"{b.page}:{b.line}" for b in every if b.language in ("py", "python3", "pycon", "ipython")]
    assert not other_tags, f"tag Python blocks as ```python so they run: {other_tags}"


def test_markers_need_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import _doc_examples

    (tmp_path / "page.md").write_text("<!-- not run: -->\n```python\n1 / 0\n```\n")
    monkeypatch.setattr(_doc_examples, "ROOT", tmp_path)
    with pytest.raises(ValueError, match="needs a reason"):
        blocks("page.md")
    (tmp_path / "page.md").write_text("text\n<!-- not run: divides by zero on purpose -->\n```python\n1 / 0\n```\n")
    assert blocks("page.md") == [Block("page.md", 3, "python", "1 / 0\n", "divides by zero on purpose")]
    run_page("page.md", tmp_path)  # skipped, so no ZeroDivisionError
