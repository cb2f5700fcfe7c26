"""Each short flag means one thing across commands, and ``--float`` keeps the promised range (issue 25 item 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer
from typer.testing import CliRunner

from softdiff.cli import app

runner = CliRunner()


def _short_flags() -> dict[str, dict[str, str]]:
    """``{"-n": {"sample": "n", ...}}``: every command's short options and the parameter each sets."""
    group = typer.main.get_command(app)  # a click group (of the click copy newer Typer versions carry)
    commands: dict[str, Any] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = command.commands if hasattr(command, "commands") else {"": command}
        commands |= {f"{name} {sub}".strip(): c for sub, c in subcommands.items()}
    flags: dict[str, dict[str, str]] = {}
    for name, command in commands.items():
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if len(opt) == 2 and opt.startswith("-"):
                    flags.setdefault(opt, {})[name] = str(param.name)
    return flags


def test_n_is_a_number_of_images_in_every_command() -> None:
    users = _short_flags()["-n"]
    assert "train" not in users and "schedule" not in users  # steps and candidates have long names only
    assert set(users) >= {"sample", "corrupt", "eval", "check-operator"}
    assert all(name == "n" for name in users.values()), users


def test_no_short_flag_sets_different_settings_in_different_commands() -> None:
    meanings = {
        "-k": {"levels", "k", "samples"},  # corrupt/schedule: levels; restore's posterior samples (its own page)
    }
    for flag, users in _short_flags().items():
        names = set(users.values())
        assert len(names) == 1 or names <= meanings.get(flag, set()), (flag, users)


def test_float_samples_stay_in_the_data_range_and_match_the_uint8_ones(run_dir: Path, tmp_path: Path) -> None:
    args = ["sample", "--ckpt", str(run_dir), "--steps", "3", "-n", "16", "--device", "cpu", "--no-progress"]
    floats = runner.invoke(app, [*args, "--float", "--out", str(tmp_path / "f")])
    ints = runner.invoke(app, [*args, "--out", str(tmp_path / "u")])
    assert floats.exit_code == 0 and ints.exit_code == 0, floats.output + ints.output
    x = np.load(tmp_path / "f" / "samples.npz")["images"]
    u = np.load(tmp_path / "u" / "samples.npz")["images"]
    assert x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1
    np.testing.assert_array_equal(np.round((x + 1) * 127.5).astype(np.uint8), u)
