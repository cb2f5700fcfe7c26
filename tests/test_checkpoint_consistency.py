"""Edited checkpoints (issue 25): a load compares config.json with the weights, the prior and the statistics.

Every edit below is followed by a re-hash of the manifest, so the SHA-256 check passes and
only the content checks of ``softdiff.train.consistency`` can catch it. The ``old`` cases
also strip the config identity from the tensor files (as in checkpoints written before it
existed), so the structural checks are tested on their own.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.train import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
TENSOR_FILES = ("net", "ema", "prior", "precond", "rng")


def rehash(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in manifest["sha256"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def edit_tensors(folder: Path, name: str, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Rewrite ``name.safetensors`` after ``change`` (without the config identity it recorded)."""
    tensors = load_safetensors((folder / f"{name}.safetensors").read_bytes())
    change(tensors)
    (folder / f"{name}.safetensors").write_bytes(save_safetensors(tensors))


def strip_identity(folder: Path) -> None:
    for name in TENSOR_FILES:
        if (folder / f"{name}.safetensors").is_file():
            edit_tensors(folder, name, lambda t: None)


def edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config, indent=2))

    return edit


def _bigger(config: dict) -> None:
    config["data"]["image_size"] = config["model"]["image_size"] = 28


def _residual(config: dict) -> None:
    config["objective"]["parameterisation"] = "residual"


def tampered(run_dir: Path, tmp_path: Path, change: Callable[[Path], None], old: bool = False) -> Path:
    """A copy of the tiny run whose latest checkpoint went through ``change`` and a re-hash."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    folder = copy / (copy / "latest").read_text().strip()
    if old:
        strip_identity(folder)
    change(folder)
    rehash(folder)
    return copy


def refused(args: list[str]) -> str:
    result = runner.invoke(app, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def sample_args(run: Path, out: Path) -> list[str]:
    return [
        "sample",
        "--ckpt",
        str(run),
        "--out",
        str(out),
        "-n",
        "2",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--no-progress",
    ]


@pytest.fixture(scope="module")
def other_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny run of the same network and data, with another objective."""
    out = tmp_path_factory.mktemp("other") / "run"
    args = ["train", "--dataset", "synthetic", "--steps", "1", "--batch-size", "8", "--width", "8"]
    args += ["--objective", "x0", "--device", "cpu", "--threads", "1", "--no-progress", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_another_runs_config_json_copied_in_is_refused(run_dir: Path, other_run: Path, tmp_path: Path) -> None:
    theirs = read_checkpoint(other_run).path / "config.json"
    run = tampered(run_dir, tmp_path, lambda folder: shutil.copy(theirs, folder / "config.json"))
    assert "config.json is not the config" in refused(sample_args(run, tmp_path / "s"))


@pytest.mark.parametrize(
    "change",
    [
        edit_config(lambda c: c["objective"].update(name="dsm", params={})),
        edit_config(lambda c: c["objective"].update(parameterisation="precond_dct")),
        edit_config(lambda c: c["corruption"]["noise"].update(s_max=0.5)),
    ],
    ids=["objective", "parameterisation", "noise"],
)
def test_an_edited_config_json_is_refused(run_dir: Path, tmp_path: Path, change: Callable[[Path], None]) -> None:
    run = tampered(run_dir, tmp_path, change)
    assert "config.json is not the config" in refused(sample_args(run, tmp_path / "s"))
    assert "config.json is not the config" in refused(["corrupt", "synthetic", "--ckpt", str(run), "--out", "x.png"])


def test_train_settings_and_the_data_folder_may_change(run_dir: Path, tmp_path: Path) -> None:
    def change(c: dict) -> None:
        c["train"]["device"], c["train"]["ckpt_every"], c["data"]["data_dir"] = "cpu", 7, "/moved/data"

    run = tampered(run_dir, tmp_path, edit_config(change))
    result = runner.invoke(app, sample_args(run, tmp_path / "s"))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (edit_config(_bigger), "the prior is over images of shape (1, 16, 16), but config.json describes (1, 28, 28)"),
        (edit_config(_residual), "parameterisation 'residual' with weighting 'uniform' needs no precond.safetensors"),
        (lambda f: edit_tensors(f, "ema", lambda t: t.update({k: v.long() for k, v in t.items()})), "int64"),
        (lambda f: edit_tensors(f, "net", lambda t: t.update(extra=torch.zeros(2))), "raw and EMA weights"),
        (lambda f: edit_tensors(f, "prior", lambda t: t.update(extra=torch.zeros(2))), "not those of a Gaussian"),
        (lambda f: edit_tensors(f, "prior", lambda t: t.update(mean=t["mean"].long())), "not floating point"),
        (lambda f: edit_tensors(f, "precond", lambda t: t.update(extra=torch.zeros(2))), "needs the tensors"),
    ],
    ids=["28x28-config", "parameterisation", "int64-ema", "extra-weight", "extra-prior", "int-prior", "extra-stats"],
)
def test_an_old_checkpoint_is_checked_on_structure(
    run_dir: Path, tmp_path: Path, change: Callable[[Path], None], message: str
) -> None:
    run = tampered(run_dir, tmp_path, change, old=True)
    assert message in refused(sample_args(run, tmp_path / "s"))


def test_int64_ema_weights_of_the_right_shapes_are_refused(run_dir: Path, tmp_path: Path) -> None:
    def int_ema(folder: Path) -> None:
        edit_tensors(folder, "ema", lambda t: t.update({k: v.round().long() for k, v in t.items()}))
        edit_tensors(folder, "net", lambda t: t.update({k: v.round().long() for k, v in t.items()}))

    run = tampered(run_dir, tmp_path, int_ema, old=True)  # load_state_dict would cast them to float silently
    assert "int64, the network needs" in refused(sample_args(run, tmp_path / "s"))


def _wrong_moments(folder: Path) -> None:
    state = torch.load(folder / "optimizer.pt", weights_only=True)
    for entry in state["state"].values():
        entry["exp_avg"] = torch.zeros(2, 2)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    (folder / "optimizer.pt").write_bytes(buffer.getvalue())


def test_optimizer_moments_of_the_wrong_shape_are_refused_on_resume(run_dir: Path, tmp_path: Path) -> None:
    """Once a segmentation fault inside the fused AdamW step: run in a child process."""
    run = tampered(run_dir, tmp_path, _wrong_moments)
    args = [
        "train",
        "--resume",
        "--out",
        str(run),
        "--steps",
        "4",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "softdiff", *args], capture_output=True, text=True, env=env)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
    assert "the optimizer's exp_avg of parameter 0 is (2, 2) float32" in lines[0]
