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
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from typer.testing import CliRunner

from softdiff.cli import app

try:
    import tomllib  # novermin: guarded, tomli below
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

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


def _edit_optimizer(folder: Path, change: Callable[[dict], None]) -> None:
    state = torch.load(folder / "optimizer.pt", weights_only=True)
    change(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    (folder / "optimizer.pt").write_bytes(buffer.getvalue())


def _edit_manifest(value: object) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["sha256"] = value
        (folder / "manifest.json").write_text(json.dumps(manifest))

    return edit


def _edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config, indent=2))

    return edit


def _strip_identity(folder: Path) -> None:
    """Rewrite the tensor files without the config identity they record (a checkpoint of an older softdiff)."""
    for file in folder.glob("*.safetensors"):
        file.write_bytes(save_safetensors(load_safetensors(file.read_bytes())))


def _retype(folder: Path, name: str, change: Callable[[dict], None]) -> None:
    tensors = load_safetensors((folder / name).read_bytes())
    change(tensors)
    (folder / name).write_bytes(save_safetensors(tensors))


def _bigger(config: dict) -> None:
    config["data"]["image_size"] = config["model"]["image_size"] = 28


def _residual(config: dict) -> None:
    config["objective"]["parameterisation"] = "residual"


def _wrong_moments(state: dict) -> None:
    for entry in state["state"].values():
        entry["exp_avg"] = torch.zeros(2, 2)


TAMPERED: dict[str, Callable[[Path], None]] = {
    "SHA_LIST": _edit_manifest(["net.safetensors"]),
    "SHA_STRING": _edit_manifest("deadbeef"),
    "SHA_NULL": _edit_manifest(None),
    "NAN_EMA": lambda f: (_edit_tensors(f, "ema.safetensors"), rehash(f)),
    "NAN_PRIOR": lambda f: (_edit_tensors(f, "prior.safetensors"), rehash(f)),
    "NO_OPTIMIZER": lambda f: (_edit_optimizer(f, lambda s: s.pop("param_groups")), rehash(f)),
    "BAD_RNG": lambda f: (
        _retype(f, "rng.safetensors", lambda t: t.update(torch=torch.zeros(3, dtype=torch.uint8))),
        rehash(f),
    ),
    # issue 25: config.json edited or replaced after the fact, and content that only a check of it can catch
    "CFG_OBJECTIVE": lambda f: (_edit_config(lambda c: c["objective"].update(name="dsm", params={}))(f), rehash(f)),
    "CFG_PARAMETERISATION": lambda f: (_edit_config(_residual)(f), rehash(f)),
    "OLD_BIGGER": lambda f: (_strip_identity(f), _edit_config(_bigger)(f), rehash(f)),
    "OLD_RESIDUAL": lambda f: (_strip_identity(f), _edit_config(_residual)(f), rehash(f)),
    "INT_EMA": lambda f: (
        _retype(f, "ema.safetensors", lambda t: t.update({k: v.round().long() for k, v in t.items()})),
        rehash(f),
    ),
    "EXTRA_KEY": lambda f: (_retype(f, "net.safetensors", lambda t: t.update(extra=torch.zeros(2))), rehash(f)),
    "WRONG_MOMENTS": lambda f: (_edit_optimizer(f, _wrong_moments), rehash(f)),
}

SAMPLED = [name for name in TAMPERED if name != "WRONG_MOMENTS"]  # sampling reads no optimizer moments

PLUGINS = """
import sys
import torch
from softdiff.corrupt import LinearCorruption


class Raises(LinearCorruption):
    def forward(self, x, t):
        raise RuntimeError("boom inside forward")


class WrongShape(LinearCorruption):
    def forward(self, x, t):
        return x[..., :-1]


class NaNs(LinearCorruption):
    def forward(self, x, t):
        return x * float("nan")

    def adjoint(self, y, t):
        return y * float("nan")


class F64Mat(LinearCorruption):
    def forward(self, x, t):
        return x @ torch.eye(x.shape[-1], dtype=torch.float64)

    def adjoint(self, y, t):
        return y @ torch.eye(y.shape[-1], dtype=torch.float64)
"""


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _hostile_files(root: Path, paths: dict[str, Path]) -> dict[str, str]:
    """Issue 25's plugins, special files and configs; returns the spec placeholders (not paths)."""
    (root / "plug.py").write_text(PLUGINS)
    (root / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (root / "interrupts.py").write_text("raise KeyboardInterrupt\n")
    for name in ("FIFO", "FIFO_JSON", "FIFO_TOML"):
        paths[name] = root / {"FIFO": "pipe", "FIFO_JSON": "pipe.json", "FIFO_TOML": "pipe.toml"}[name]
        os.mkfifo(paths[name])
    paths["HUGE_JSON"] = root / "huge.json"
    paths["HUGE_JSON"].write_text(json.dumps({"t": [0.0, 1.0], "pad": "x" * (5 << 20)}))
    paths["MULTS_JSON"] = root / "mults.json"
    paths["MULTS_JSON"].write_text(json.dumps({"model": {"channel_mults": [1] * 200_000}}))
    paths["BOMB_YAML"] = root / "bomb.yaml"
    rows = ['a0: &a0 ["x", "x"]'] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    paths["BOMB_YAML"].write_text("\n".join(rows) + "\n")
    paths["NEST_JSON"] = root / "nest.json"
    paths["NEST_JSON"].write_text(json.dumps({"corruption": "PLACE"}).replace('"PLACE"', _nested(100_000)))
    paths["NEST_TOML"] = root / "nest.toml"
    paths["NEST_TOML"].write_text(f"a = {_nested(100_000)}\n")
    paths["BOOL_TOML"] = root / "bool.toml"
    paths["BOOL_TOML"].write_text("[train]\nsteps = true\n")
    plug = root / "plug.py"
    return {
        "RAISES": f"{plug}:Raises",
        "WRONGSHAPE": f"{plug}:WrongShape",
        "NANS": f"{plug}:NaNs",
        "F64MAT": f"{plug}:F64Mat",
        "EXITS": f"{root / 'exits.py'}:Anything",
        "INTERRUPTS": f"{root / 'interrupts.py'}:Anything",
        "BIGSPEC": "+".join(["blur"] * 600),
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
    specs = _hostile_files(root, paths)
    return {**{k: str(v) for k, v in paths.items()}, **specs}


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
    *[[*TRAIN, "--width", v] for v in ("0", "100000000")],
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
    *[["sample", "--ckpt", v, "--out", "OUT/s", "--device", "cpu"] for v in ("OUT/missing", "FILE", "DIR", *SAMPLED)],
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


CORPUS_FILE = Path(__file__).with_name("fuzz_corpus.toml")
CORPUS: list[dict[str, Any]] = tomllib.loads(CORPUS_FILE.read_text())["case"]


def _float_samples_in_range(paths: dict[str, str], args: list[str]) -> str | None:
    out = Path(args[args.index("--out") + 1])
    images = np.load(out / "samples.npz")["images"]
    if images.dtype != np.float32 or images.min() < -1 or images.max() > 1:
        return f"--float samples span {images.min():.3f} .. {images.max():.3f} ({images.dtype}), not [-1, 1]"
    return None


CHECKS: dict[str, Callable[[dict[str, str], list[str]], str | None]] = {
    "float-samples-in-range": _float_samples_in_range,
}


def outcome(case: dict[str, Any], result: Any, args: list[str], paths: dict[str, str]) -> str:
    """``"as expected"``, or what went wrong: ``traceback``, ``silently accepted``, ``silently wrong`` or ``other``."""
    output = result.output
    lines = [line for line in output.splitlines() if line.strip()]
    if (result.exception is not None and not isinstance(result.exception, SystemExit)) or "Traceback" in output:
        return "traceback"
    if case["expect"] == "ok":
        if result.exit_code != 0:
            return "other"
        wrong = CHECKS[case["check"]](paths, args) if "check" in case else None
        return "silently wrong" if wrong else "as expected"
    if result.exit_code == 0:
        return "silently accepted"
    one_line = result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    return "as expected" if one_line and case.get("contains", "") in lines[0] else "other"


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


def test_the_corpus_holds_every_finding_of_issue_25_once() -> None:
    findings = [case["finding"] for case in CORPUS]
    assert len(findings) == len(set(findings)) >= 50
    assert {case["expect"] for case in CORPUS} <= {"error", "ok"}
    assert all(case.get("check") in CHECKS for case in CORPUS if case["expect"] == "ok")


@pytest.mark.parametrize("case", CORPUS, ids=[case["finding"] for case in CORPUS])
def test_the_issue_25_corpus(case: dict[str, Any], hostile: dict[str, str]) -> None:
    args = _fill(case["args"], hostile)
    result = runner.invoke(app, args)
    assert outcome(case, result, args, hostile) == "as expected", f"exit {result.exit_code}, output:\n{result.output}"
