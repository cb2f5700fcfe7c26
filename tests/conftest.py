"""Shared test set-up: hypothesis profiles (``HYPOTHESIS_PROFILE=ci`` keeps CI fast)."""

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: on a loaded 2-core machine one thread is ~10x faster than two (``usefixtures``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run (synthetic data, 2 steps) shared by the CLI tests; treat it as read-only."""
    from softdiff.cli import app

    out = tmp_path_factory.mktemp("run") / "synthetic"
    args = ["train", "--dataset", "synthetic", "--steps", "2", "--batch-size", "8", "--width", "8"]
    args += ["--set", "train.select_levels=false"]  # the blur on its own schedule; selection is tested on its own
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--threads", "1", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out
