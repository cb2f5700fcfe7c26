"""The user-defined operator of docs/tutorial-new-corruption.md works as the page says."""

from __future__ import annotations

import torch
from _doc_examples import python_blocks, tutorial_namespace

from softdiff.corrupt import LinearCorruption, build_process, check_operator, corruption_names
from softdiff.schedule import level_strengths


def test_tutorial_code_is_one_short_block_that_runs() -> None:
    blocks = python_blocks("tutorial-new-corruption.md")
    assert len(blocks) == 1 and len(blocks[0].strip().splitlines()) < 30
    assert issubclass(tutorial_namespace()["FadeToGrey"], LinearCorruption)
    assert "grey" in corruption_names()
    process = build_process("blur+grey", (9, 7))
    assert process.corrupt(torch.rand(2, 1, 9, 7), 0.5).shape == (2, 1, 9, 7)


def test_tutorial_operator_is_linear_adjoint_and_identity_at_zero() -> None:
    op = tutorial_namespace()["FadeToGrey"]()
    g = torch.Generator().manual_seed(0)
    x, y = (torch.randn(3, 2, 9, 7, generator=g, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([0.0, 0.4, 1.0], dtype=torch.float64)
    assert torch.allclose(op(2 * x - 3 * y, t), 2 * op(x, t) - 3 * op(y, t))
    lhs, rhs = (op(x, t) * y).flatten(1).sum(1), (x * op.adjoint(y, t)).flatten(1).sum(1)
    assert torch.allclose(lhs, rhs, rtol=1e-12)
    assert torch.allclose(op.adjoint(y, t), op(y, t))  # symmetric, as the page says
    assert torch.equal(op(x, 0.0), x)


def test_tutorial_operator_passes_check_operator_and_reports_its_strength() -> None:
    op = tutorial_namespace()["FadeToGrey"]()
    assert check_operator(op, (3, 2, 8, 5), identity_tol=0.0).ok and repr(op) == "FadeToGrey(max_fraction=0.9)"
    assert level_strengths(build_process("grey", (8, 5)), [0.0, 1.0])["grey_fraction"] == [0.0, 0.9]


def test_the_quoted_failure_is_what_check_operator_says() -> None:
    """The page quotes the error for the bug ``x.mean()``: rebuild that operator and compare."""
    import re

    from _doc_examples import ROOT

    page = (ROOT / "docs/tutorial-new-corruption.md").read_text()
    quoted = next(line.strip() for line in page.splitlines() if "breaks per-sample t" in line)
    source = python_blocks("tutorial-new-corruption.md")[0]
    buggy = source.replace("x.mean(dim=(-2, -1), keepdim=True)", "x.mean()").split("print(")[0]
    namespace: dict[str, object] = {}
    exec(buggy, namespace)
    try:
        check_operator(namespace["FadeToGrey"](), (4, 3, 9, 7))
    except ValueError as err:
        assert str(err) == quoted, re.escape(str(err))
    else:
        raise AssertionError("the buggy operator passed")
