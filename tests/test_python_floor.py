"""The declared Python floor (``requires-python``) is true: 3.10 needs no 3.11-only feature."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = (ROOT / "pyproject.toml").read_text()


def floor() -> str:
    found = re.search(r'requires-python\s*=\s*">=(\d+\.\d+)"', PYPROJECT)
    assert found, "pyproject.toml declares requires-python"
    return found.group(1)


def test_no_module_needs_a_newer_python_than_declared() -> None:
    """vermin reads every module of the package, the tests and the benchmarks for version-specific features."""
    pytest.importorskip("vermin", reason="vermin comes with the dev extra: pip install -e '.[dev]'")
    run_vermin = "import sys, vermin; sys.exit(vermin.main())"  # vermin has no `python -m vermin`
    command = [sys.executable, "-c", run_vermin, f"-t={floor()}-", "--violations", "--eval-annotations"]
    result = subprocess.run(
        [*command, "--backport", "typing", "--no-tips", "softdiff", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_toml_configs_load_through_tomli_where_tomllib_is_missing(tmp_path: Path) -> None:
    """As on Python 3.10: ``import tomllib`` fails, the ``tomli`` dependency parses the file."""
    assert "tomli>=1.1; python_version < '3.11'" in PYPROJECT
    config = tmp_path / "run.toml"
    config.write_text('[corruption]\nspec = "blur+mask"\n')
    script = textwrap.dedent(
        """
        import sys, tomllib, types
        fake = types.ModuleType("tomli")
        fake.loads, fake.TOMLDecodeError = tomllib.loads, tomllib.TOMLDecodeError
        sys.modules["tomli"], sys.modules["tomllib"] = fake, None  # None: `import tomllib` raises
        from softdiff.train import config
        assert config.tomllib is fake
        print(config.load_config_file(sys.argv[1]))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", script, str(config)], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "{'corruption': {'spec': 'blur+mask'}}" in result.stdout
