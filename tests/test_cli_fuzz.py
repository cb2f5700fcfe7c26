"""Malformed invocations of every command: each is refused with exit 2, one ``error:`` line, no traceback.

The cases rebuild issue 14's fuzz and fault findings inside the project: bad values and
types, absurd sizes, impossible devices, hostile images and level files, output paths that
are files or lie under ``/dev/null``, and checkpoints tampered with and re-hashed (so the
SHA-256 check passes and only the content checks can catch them). Nothing in the list may
be silently accepted: a NaN prior, a negative seed or a level table made for another
corruption must be refused, not used. Everything runs in-process with Typer's CliRunner
and fails before any real work, so the whole list takes seconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from typer.testing import CliRunner

from softdiff.cli import app

runner = CliRunner()

HUGE = str(10**12)


def rehash(folder: Path) -> None:
    """Rewrite the manifest's hashes for the files as they are now (a tamperer's last step)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in manifest["sha256"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _edit_tensors(folder: Path, name: str) -> None:
    tensors = load_safetensors((folder / name).read_bytes())
    first = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[first] = tensors[first].clone().fill_(float("nan"))
    (folder / name).write_bytes(save_safetensors(tensors))


def _edit_state(folder: Path, change: Callable[[dict], None]) -> None:
    state = torch.load(folder / "state.pt", weights_only=True)
    change(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    (folder / "state.pt").write_bytes(buffer.getvalue())


def _edit_manifest(value: object) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["sha256"] = value
        (folder / "manifest.json").write_text(json.dumps(manifest))

    return edit


TAMPERED: dict[str, Callable[[Path], None]] = {
    "SHA_LIST": _edit_manifest(["net.safetensors"]),
    "SHA_STRING": _edit_manifest("deadbeef"),
    "SHA_NULL": _edit_manifest(None),
    "NAN_EMA": lambda f: (_edit_tensors(f, "ema.safetensors"), rehash(f)),
    "NAN_PRIOR": lambda f: (_edit_tensors(f, "prior.safetensors"), rehash(f)),
    "NO_OPTIMIZER": lambda f: (_edit_state(f, lambda s: s.pop("optimizer")), rehash(f)),
    "BAD_RNG": lambda f: (
        _edit_state(f, lambda s: s["rng"].update(torch=torch.zeros(3, dtype=torch.uint8))),
        rehash(f),
    ),
}


def _levels(path: Path, t: object, **meta: object) -> Path:
    path.write_text(json.dumps({"t": t, **meta}))  # a hand-written table that records its corruption
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, run_dir: Path) -> dict[str, str]:
    """Placeholders -> paths: copies of the tiny run tampered with, bad images and level files."""
    root = tmp_path_factory.mktemp("hostile")
    paths: dict[str, Path] = {"RUN": run_dir, "OUT": root / "out", "DIR": root / "a-folder"}
    paths["DIR"].mkdir()
    for name, damage in TAMPERED.items():
        copy = root / name.lower()
        shutil.copytree(run_dir, copy)
        damage(copy / (copy / "latest").read_text().strip())
        paths[name] = copy
    paths["FILE"] = root / "notes.txt"
    paths["FILE"].write_text("not an image, a config or a checkpoint\n")
    paths["IMG"] = root / "small.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(paths["IMG"])
    paths["WIDE"] = root / "wide.png"  # 1 x 60000: the DCT basis of a 60000 side would need 29 GB
    Image.fromarray(np.zeros((1, 60_000), np.uint8)).save(paths["WIDE"])
    bombs = root / "bombs"
    bombs.mkdir()
    paths["BOMB"] = bombs / "bomb.png"  # a small file with more pixels than Pillow's safety limit
    Image.new("1", (10_000, 10_000)).save(paths["BOMB"])
    paths["BOMBS"] = bombs
    blur = {"spec": "blur", "config": {"spec": "blur", "noise": {"schedule": "geometric"}}}
    paths["NONMONO"] = _levels(root / "nonmono.json", [0.0, 0.6, 0.4, 1.0], **blur)
    paths["OUTSIDE"] = _levels(root / "outside.json", [0.0, 0.5, 1.5], **blur)
    paths["NESTED"] = _levels(root / "nested.json", [[0.0, 0.5, 1.0]], **blur)
    mask = {"spec": "mask", "config": {"spec": "mask"}}
    paths["MASK_LEVELS"] = _levels(root / "mask.json", [0.0, 0.5, 1.0], **mask)
    paths["PIXELATE_LEVELS"] = _levels(root / "pixelate.json", [0.0, 0.5, 1.0], spec="blur+pixelate")
    fashion = {**blur, "data": {"dataset": "fashion-mnist", "shape": [1, 28, 28]}}
    paths["FASHION_LEVELS"] = _levels(root / "fashion.json", [0.0, 0.5, 1.0], **fashion)
    paths["BAD_TOML"] = root / "bad.toml"
    paths["BAD_TOML"].write_text("[train\n")
    paths["EVAL_NO_FID"] = root / "eval-no-fid"
    paths["EVAL_NO_FID"].mkdir()
    cell = {"sampler": "momentum", "steps": 2, "nfe": 2, "kid_mean": 0.0, "kid_std": 0.0, "seconds": 1.0}
    (paths["EVAL_NO_FID"] / "eval.json").write_text(json.dumps({"version": 1, "results": [cell]}))
    return {k: str(v) for k, v in paths.items()}


TRAIN = ["train", "--dataset", "synthetic", "--out", "OUT/train", "--no-progress", "--device", "cpu", "--threads", "1"]
RESUME = ["train", "--resume", "--no-progress", "--device", "cpu", "--out"]
SAMPLE = ["sample", "--ckpt", "RUN", "--out", "OUT/samples", "--device", "cpu", "--no-progress"]
EVAL = ["eval", "--ckpt", "RUN", "--out", "OUT/eval", "--device", "cpu", "--no-progress", "--cache-dir", "OUT/cache"]
CORRUPT = ["corrupt", "synthetic", "--out", "OUT/strip.png"]
SCHEDULE = ["schedule", "--dataset", "synthetic", "--out", "OUT/levels.json", "--samples", "64"]
FEATURES = ["features", "train", "--out", "OUT/features.safetensors"]
DEVICES = ["tpu", "cuda:0", "meta", "", "cpu:5"]

CASES: list[list[str]] = [
    # the command line itself
    ["bogus"],
    ["--bogus"],
    ["features", "bogus"],
    # train: values, types, sizes
    *[[*TRAIN, "--steps", v] for v in ("0", "-5", "abc", "1e3", "1.5", HUGE)],
    *[[*TRAIN, "--batch-size", v] for v in ("0", "-1", "x")],
    *[[*TRAIN, "--lr", v] for v in ("0", "-1", "nan", "inf", "1e308", "fast")],
    *[[*TRAIN, "--seed", v] for v in ("-1", "x")],
    *[[*TRAIN, "--channels", v] for v in ("0", "100000000")],
    [*TRAIN, "--threads", "0"],
    [*TRAIN, "--nproc", "0"],
    *[[*TRAIN, "--device", v] for v in ("tpu", "cuda", "", "meta")],
    *[[*TRAIN, "--corruption", v] for v in ("blurx", "", "blur+", "noise+bogus")],
    [*TRAIN, "--objective", "vlb"],
    [*TRAIN, "--weighting", "heavy"],
    [*TRAIN, "--parameterisation", "eps"],
    *[
        [*TRAIN, "--set", v]
        for v in (
            "train.steps=true",
            "optim.lr=true",
            "optim.lr=NaN",
            "optim.lr=Infinity",
            "nokey",
            "=3",
            "train.stpes=3",
            "optim.grad_clip=-1",
            "optim.ema_decay=1.5",
            "optim.betas=[0.9]",
            "train.ckpt_minutes=0",
            "train.ckpt_minutes=-1",
            "train.max_bad_steps=0",
            "data.prior_images=1",
            "train.steps.x=1",
            "model.base_channels=true",
            "corruption.noise.s_min=0",
        )
    ],
    [*TRAIN, "--config", "FILE"],
    [*TRAIN, "--config", "OUT/missing.toml"],
    [*TRAIN, "--config", "BAD_TOML"],
    # train: level tables that must not be used
    *[[*TRAIN, "--levels", v] for v in ("NONMONO", "OUTSIDE", "NESTED", "MASK_LEVELS", "FASHION_LEVELS", "FILE")],
    [*TRAIN, "--levels", "OUT/missing.json"],
    *[[*TRAIN, "-c", c, "--levels", "PIXELATE_LEVELS"] for c in ("noise", "mask")],
    # train: data
    [*TRAIN, "--data-dir", "/nonexistent"],
    ["train", "--dataset", "nope", "--out", "OUT/x", "--no-progress"],
    ["train", "--dataset", "folder", "--data-dir", "BOMBS", "--out", "OUT/x", "--no-progress", "--device", "cpu"],
    ["train", "--dataset", "folder", "--out", "OUT/x", "--no-progress", "--device", "cpu"],
    ["train", "--dataset", "folder", "--data-dir", "DIR", "--image-size", "100000", "--out", "OUT/x"],
    # train: output folders
    ["train", "--dataset", "synthetic", "--out", "FILE", "--no-progress", "--device", "cpu"],
    ["train", "--dataset", "synthetic", "--out", "/dev/null/run", "--no-progress", "--device", "cpu"],
    ["train", "--dataset", "synthetic", "--out", "FILE/run", "--no-progress", "--device", "cpu"],
    ["train", "--dataset", "synthetic", "--out", "RUN", "--no-progress", "--device", "cpu"],  # holds a run already
    # train --resume: tampered checkpoints and conflicting settings
    *[[*RESUME, name] for name in TAMPERED],
    [*RESUME, "RUN", "--seed", "5"],
    [*RESUME, "RUN", "--batch-size", "4"],
    [*RESUME, "RUN", "--corruption", "mask"],
    [*RESUME, "RUN", "--lr", "0.5"],
    [*RESUME, "FILE"],
    ["train", "--resume", "--no-progress"],
    # sample
    ["sample", "--out", "OUT/s"],
    *[["sample", "--ckpt", v, "--out", "OUT/s", "--device", "cpu"] for v in ("OUT/missing", "FILE", "DIR", *TAMPERED)],
    *[[*SAMPLE, "--sampler", v] for v in ("ddpm", "", "momentum,naive")],
    *[[*SAMPLE, "--steps", v] for v in ("0", HUGE, "abc", "-1")],
    *[[*SAMPLE, "-n", v] for v in ("0", "-3", HUGE, "many")],
    [*SAMPLE, "--batch-size", "0"],
    [*SAMPLE, "--seed", "-1"],
    *[[*SAMPLE, "--scale", v] for v in ("0", "100000")],
    *[[*SAMPLE, "--device", v] for v in DEVICES],
    ["sample", "--ckpt", "RUN", "--out", "FILE", "--device", "cpu"],
    ["sample", "--ckpt", "RUN", "--out", "/dev/null/samples", "--device", "cpu"],
    [*SAMPLE, "--nproc", "0"],
    *[[*SAMPLE, "--grid", v] for v in ("PIXELATE_LEVELS", "MASK_LEVELS", "NONMONO", "OUT/missing.json")],
    [*SAMPLE, "--bogus"],
    # eval
    *[[*EVAL, "--sampler", v] for v in ("ddpm", ",", "")],
    *[[*EVAL, "--steps", v] for v in ("", "0", "a,b", HUGE, "5,-1")],
    *[[*EVAL, "-n", v] for v in ("1", "0", HUGE)],
    *[[*EVAL, "-n", "2", "--steps", "2", "--grid", v] for v in ("PIXELATE_LEVELS", "MASK_LEVELS")],
    *[[*EVAL, "--features", v] for v in ("nope",)],
    [*EVAL, "--seed", "-1"],
    [*EVAL, "--batch-size", "0"],
    *[[*EVAL, "--device", v] for v in DEVICES],
    ["eval", "--ckpt", "RUN", "--out", "FILE", "--device", "cpu"],
    ["eval", "--ckpt", "RUN", "--out", "/dev/null/eval", "--device", "cpu"],
    ["eval", "--ckpt", "RUN", "--out", "OUT/e", "--cache-dir", "FILE", "--device", "cpu"],
    ["eval", "--ckpt", "RUN", "--out", "EVAL_NO_FID", "--device", "cpu"],
    ["eval", "--ckpt", "RUN", "--out", "DIR", "--device", "cpu", "--features", "inception"],
    *[["eval", "--ckpt", v, "--out", "OUT/e", "--device", "cpu"] for v in ("OUT/missing", "NAN_PRIOR", "SHA_NULL")],
    # corrupt
    *[["corrupt", v, "--out", "OUT/c.png"] for v in ("nope", "BOMB", "WIDE", "FILE")],
    *[[*CORRUPT, "--levels", v] for v in ("1", str(10**8), "x")],
    *[[*CORRUPT, "--scale", v] for v in ("0", "-5", "100000")],
    *[[*CORRUPT, "-n", v] for v in ("0", "100000")],
    [*CORRUPT, "--seed", "-1"],
    [*CORRUPT, "--corruption", "blurx"],
    *[[*CORRUPT, "--level-file", v] for v in ("NONMONO", "OUTSIDE", "NESTED", "MASK_LEVELS", "FASHION_LEVELS")],
    ["corrupt", "synthetic", "--out", "DIR"],
    ["corrupt", "synthetic", "--out", "/dev/null/strip.png"],
    ["corrupt", "IMG", "--out", "OUT/c.png", "--data-dir", "DIR"],
    ["corrupt", "synthetic", "--out", "OUT/c.png", "--data-dir", "/nonexistent"],
    ["corrupt", "--out", "OUT/c.png"],
    [*CORRUPT, "--bogus"],
    # schedule
    *[[*SCHEDULE, "-k", v] for v in ("1", "300")],
    [*SCHEDULE, "--candidates", str(10**7)],
    *[[*SCHEDULE, "--samples", v] for v in ("1", str(10**6))],
    [*SCHEDULE, "--projection", "-1"],
    [*SCHEDULE, "--seed", "-1"],
    [*SCHEDULE, "--threads", "0"],
    [*SCHEDULE, "--corruption", "blurx"],
    ["schedule", "--dataset", "nope", "--out", "OUT/l.json"],
    ["schedule", "--dataset", "synthetic", "--data-dir", "/nonexistent", "--out", "OUT/l.json"],
    ["schedule", "--dataset", "synthetic", "--out", "/dev/null/l.json"],
    ["schedule", "--dataset", "synthetic", "--out", "DIR"],
    # report
    *[["report", v] for v in ("OUT/missing", "FILE", "DIR", "/dev/null", "RUN/checkpoints", "BAD_TOML")],
    ["report"],
    *[["report", "RUN", "--out", v] for v in ("/dev/null/report", "FILE", "/dev/null")],
    ["report", "RUN", "DIR", "--out", "OUT/both"],
    ["report", "RUN", "--bogus"],
    # features train
    *[[*FEATURES, "--lr", v] for v in ("inf", "nan", "0", "-1")],
    *[[*FEATURES, v, "0"] for v in ("--epochs", "--batch-size")],
    [*FEATURES, "--seed", "-1"],
    ["features", "train", "--out", "OUT/features.txt"],
    ["features", "train", "--out", "/dev/null/f.safetensors"],
    [*FEATURES, "--data-dir", "/nonexistent"],
]


def _fill(args: list[str], paths: dict[str, str]) -> list[str]:
    filled = []
    for arg in args:
        head, sep, tail = arg.partition("/")
        filled.append(paths[head] + sep + tail if head in paths else arg)
    return filled


def test_the_fuzz_covers_every_command_with_at_least_100_cases() -> None:
    assert len(CASES) >= 100
    commands = {args[0] if args[0] != "features" else " ".join(args[:2]) for args in CASES}
    assert {"train", "sample", "eval", "corrupt", "schedule", "report", "features train"} <= commands


def _case_id(args: list[str]) -> str:
    return f"{args[0]} .. {' '.join(args[-3:])}" if len(args) > 4 else " ".join(args)


@pytest.mark.parametrize("args", CASES, ids=[_case_id(a) for a in CASES])
def test_malformed_invocation_is_one_error_line(args: list[str], hostile: dict[str, str]) -> None:
    result = runner.invoke(app, _fill(args, hostile))
    output = result.output
    assert result.exit_code == 2, f"exit {result.exit_code}, output:\n{output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
