"""The user-defined operator of docs/tutorial-new-corruption.md works as the page says."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from _doc_examples import blocks, python_blocks, tutorial_namespace
from test_eval_cli import PooledPixels  # features for 16x16 synthetic images
from typer.testing import CliRunner

import softdiff.cli.eval as eval_cli
from softdiff.cli import app
from softdiff.corrupt import LinearCorruption, build_process, check_operator, corruption_names
from softdiff.schedule import level_strengths
from softdiff.train import read_checkpoint


def test_tutorial_operator_is_one_short_module_and_the_page_runs() -> None:
    blocks = python_blocks("tutorial-new-corruption.md")
    assert len(blocks[0].strip().splitlines()) < 30 and "class FadeToGrey(LinearCorruption)" in blocks[0]
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


# the page's commands, shrunk to seconds: later flags override the page's own
TINY = {
    "check-operator": ["--dataset", "synthetic"],
    "schedule": ["--dataset", "synthetic", "--candidates", "12", "-k", "4", "--samples", "64", "--threads", "1"],
    "train": ["--dataset", "synthetic", "--steps", "3", "--batch-size", "8", "--width", "8", "--device", "cpu"],
    "sample": ["-n", "4", "--steps", "3", "--device", "cpu", "--no-progress"],
    "eval": ["-n", "6", "--steps", "2", "--sampler", "momentum", "--device", "cpu", "--no-progress"],
    "restore": ["--from-dataset", "synthetic", "-n", "2", "--steps", "3", "--device", "cpu"],
}


def test_the_command_line_path_of_the_page_runs_with_its_myops_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """myops.py and grey.toml are the page's blocks; each shell line runs (tiny settings) in that folder."""
    page = blocks("docs/tutorial-new-corruption.md")
    (tmp_path / "myops.py").write_text(python_blocks("tutorial-new-corruption.md")[0])
    (tmp_path / "grey.toml").write_text(next(b.code for b in page if b.language == "toml"))
    commands = [line for line in next(b.code for b in page if b.language == "bash").splitlines() if line.strip()]
    assert [shlex.split(line)[1] for line in commands] == [
        "check-operator",
        "schedule",
        "train",
        "sample",
        "eval",
        "restore",
    ]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(eval_cli, "get_extractor", lambda features, inception_weights=None: PooledPixels())
    for line in commands:
        args = shlex.split(line)[1:]
        extra = TINY[args[0]] + (["--no-progress", "--threads", "1"] if args[0] == "train" else [])
        extra += ["--cache-dir", str(tmp_path / "cache")] if args[0] == "eval" else []
        result = CliRunner().invoke(app, [*args, *extra])
        assert result.exit_code == 0, f"{line}\n{result.output}"
    stored = read_checkpoint(tmp_path / "runs" / "grey").config
    assert stored.corruption.spec == f"blur+{tmp_path / 'myops.py'}:FadeToGrey"
    assert stored.corruption.params == {"max_fraction": 0.8} and stored.corruption.levels is not None
    assert stored.operator.startswith("FadeToGrey(max_fraction=0.8) @ GaussianBlur(")
    levels = json.loads((tmp_path / "levels-grey.json").read_text())
    assert levels["config"]["params"] == {"max_fraction": 0.8} and "grey_fraction" in json.dumps(levels)
    assert np.load(tmp_path / "samples-grey" / "samples.npz")["images"].shape == (4, 1, 16, 16)
    assert (tmp_path / "runs" / "grey" / "eval" / "eval.json").is_file()
    metrics = json.loads((tmp_path / "restored" / "metrics.json").read_text())
    assert metrics["meta"]["operator"] == "myops.py:FadeToGrey:max_fraction=0.8,t=0.5"
