"""An output path that names a FIFO, a device or a link is refused in one line, never replaced."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.imageio import atomic_write_bytes

runner = CliRunner()


@pytest.fixture
def specials(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    target = tmp_path / "target.json"
    target.write_text("kept")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    return {"fifo": fifo, "link": link, "target": target}


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_atomic_write_refuses_special_files_and_links(specials: dict[str, Path], kind: str) -> None:
    with pytest.raises(ValueError, match="symbolic link" if kind == "link" else "not a regular file"):
        atomic_write_bytes(specials[kind], b"new")
    assert stat.S_ISFIFO(os.lstat(specials["fifo"]).st_mode) and specials["link"].is_symlink()
    assert specials["target"].read_text() == "kept"


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_schedule_out_refuses_them_before_any_work(specials: dict[str, Path], kind: str) -> None:
    """`softdiff schedule --out /dev/null` used to replace the device node; the same on a FIFO and a link."""
    result = runner.invoke(
        app, ["schedule", "--dataset", "synthetic", "-k", "4", "--candidates", "8", "--out", str(specials[kind])]
    )
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    assert stat.S_ISFIFO(os.lstat(specials["fifo"]).st_mode) and specials["link"].is_symlink()
    assert specials["target"].read_text() == "kept"
    assert not specials[kind].with_suffix(".png").exists()
