"""Bracketed words in help texts and error messages reach the user as written (rich markup used to eat them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from softdiff.cli import app

runner = CliRunner()
COMMANDS = sorted(info.name for info in app.registered_commands)


def _bracketed_help(name: str) -> list[str]:
    command = typer.main.get_command(app).commands[name]
    texts = [p.help for p in command.params if getattr(p, "help", None)] + [command.help or ""]
    return [word for text in texts for word in re.findall(r"\S*\[[^\]\s]+\]\S*", text)]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_keeps_every_bracketed_word(name: str) -> None:
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    flat = " ".join(result.output.split())
    for word in _bracketed_help(name):
        assert word.strip("`'\"(),.;") in flat, (name, word)


def test_some_help_has_brackets_to_keep() -> None:
    assert any(_bracketed_help(name) for name in COMMANDS)  # else the test above checks nothing


def test_error_messages_keep_brackets_and_markup_in_user_input_is_text(run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "--ckpt", str(run_dir), "--features", "inception", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "softdiff[inception]" in result.output, result.output
    result = runner.invoke(app, ["corrupt", "fashion-mnist", "-c", "[/]"])
    assert result.exit_code == 2 and "'[/]'" in result.output and "Traceback" not in result.output
