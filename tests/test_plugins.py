"""Plugin operators: ``module:Class`` and ``file.py:Class`` in specs, their params, checkpoints, errors, registries.

A test-local module (written to a temporary folder) defines an operator with two
parameters. Runs trained with it from the CLI are sampled again in a fresh interpreter,
which must rebuild the operator from ``config.json`` alone and give the same images.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import DATA, config, tiny_net
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.corrupt import (
    CorruptionConfig,
    CorruptionProcess,
    FadeToMean,
    Geometric,
    Identity,
    LevelTable,
    LinearCorruption,
    LinearNoise,
    register_corruption,
)
from softdiff.corrupt.reference import reference_of
from softdiff.data import register_dataset
from softdiff.registry import Registry
from softdiff.samplers import register_sampler
from softdiff.score import OBJECTIVES
from softdiff.train import load_run, read_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
MODULE = "softdiff_test_plugin_ops"  # unique: the module is imported into this test process
TINY = ["--dataset", "synthetic", "--steps", "3", "--batch-size", "8", "--width", "8"]
QUIET = ["--device", "cpu", "--threads", "1", "--no-progress"]

SOURCE = '''
import torch
from torch import Tensor

from softdiff.corrupt import LinearCorruption


class Fade(LinearCorruption):
    """Each channel fades to its mean: f = fraction * t**power."""

    def __init__(self, fraction: float = 0.9, power: int = 1) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
        self.fraction, self.power = fraction, power

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        f = (self.fraction * t**self.power)[:, None, None, None]
        return (1 - f) * x + f * x.mean(dim=(-2, -1), keepdim=True)


class Plain:
    pass


NUMBER = 3
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plugins")
    (folder / f"{MODULE}.py").write_text(SOURCE)
    (folder / "fileops.py").write_text(SOURCE)
    (folder / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    sys.path.insert(0, str(folder))  # the module form needs it importable here, as PYTHONPATH does elsewhere
    yield folder
    sys.path.remove(str(folder))


def _cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def _fresh(args: list[str], pythonpath: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m softdiff ARGS`` in a new interpreter with exactly ``pythonpath`` (and the repository)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *pythonpath]), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "softdiff", *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def _sample_args(run: Path, out: Path) -> list[str]:
    return ["sample", "--ckpt", str(run), "-n", "4", "--steps", "3", "--out", str(out), "--device", "cpu"]


@pytest.fixture(scope="module")
def module_run(plugin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``--corruption MODULE:Fade`` with both params from ``--set``."""
    out = tmp_path_factory.mktemp("module-run") / "run"
    sets = ["--set", "corruption.params.fraction=0.6", "--set", "corruption.params.power=2"]
    code, output = _cli(["train", *TINY, *QUIET, "-c", f"{MODULE}:Fade", *sets, "--out", str(out)])
    assert code == 0, output
    return out


@pytest.fixture(scope="module")
def file_run(plugin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``blur+fileops.py:Fade`` (a relative path) with params from a ``[corruption.params]`` table."""
    folder = tmp_path_factory.mktemp("file-run")
    (folder / "run.toml").write_text("[corruption]\nspec = 'blur+fileops.py:Fade'\n[corruption.params]\npower = 3\n")
    previous = os.getcwd()
    os.chdir(plugin_dir)  # the spec's path is relative to here; config.json records it absolute
    try:
        args = ["--config", str(folder / "run.toml"), "--out", str(folder / "run")]
        code, output = _cli(["train", *TINY, *QUIET, *args])
    finally:
        os.chdir(previous)
    assert code == 0, output
    return folder / "run"


def test_config_json_records_the_plugin_its_params_and_the_operator(module_run: Path, file_run: Path) -> None:
    stored = read_checkpoint(module_run).config
    assert stored.corruption.spec == f"{MODULE}:Fade" and stored.corruption.params == {"fraction": 0.6, "power": 2}
    assert stored.operator == "Fade(fraction=0.6, power=2)"
    stored = read_checkpoint(file_run).config
    path = Path(stored.corruption.spec.removeprefix("blur+").rpartition(":")[0])
    assert path.is_absolute() and path.name == "fileops.py" and stored.corruption.params == {"power": 3}
    assert stored.operator.startswith("Fade(fraction=0.9, power=3) @ GaussianBlur(")  # the plugin after the blur


@pytest.mark.parametrize("form", ["module", "file"])
def test_a_fresh_interpreter_samples_the_same_images(
    form: str, module_run: Path, file_run: Path, plugin_dir: Path, tmp_path: Path
) -> None:
    """The module form needs the plugin's folder on PYTHONPATH; the file form needs nothing (the path is recorded)."""
    run, pythonpath = (module_run, [str(plugin_dir)]) if form == "module" else (file_run, [])
    code, output = _cli([*_sample_args(run, tmp_path / "here"), "--no-progress"])
    assert code == 0, output
    done = _fresh([*_sample_args(run, tmp_path / "fresh"), "--no-progress"], pythonpath, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    here, fresh = np.load(tmp_path / "here" / "samples.npz"), np.load(tmp_path / "fresh" / "samples.npz")
    assert here["images"].shape == (4, 1, 16, 16)
    np.testing.assert_array_equal(here["images"], fresh["images"])


def test_a_fresh_interpreter_without_the_module_names_it_and_pythonpath(module_run: Path, tmp_path: Path) -> None:
    done = _fresh(_sample_args(module_run, tmp_path / "s"), [], cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error:") and f"'{MODULE}'" in done.stderr and "PYTHONPATH" in done.stderr


def test_the_other_commands_rebuild_the_plugin_or_take_its_params(module_run: Path, tmp_path: Path) -> None:
    code, output = _cli(["corrupt", "synthetic", "--ckpt", str(module_run), "-k", "3", "-o", str(tmp_path / "a.png")])
    assert code == 0 and (tmp_path / "a.png").is_file(), output
    args = ["restore", "--ckpt", str(module_run), "--operator", "level:t=0.5", "--noise", "0.05", "--from-dataset"]
    code, output = _cli([*args, "synthetic", "-n", "2", "--steps", "2", "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 0 and (tmp_path / "r" / "restored.npz").is_file(), output
    # the levels of the run's own corruption and data set, read from its config.json
    config_json = module_run / "config.json"
    args = [
        "schedule",
        "--config",
        str(config_json),
        "-k",
        "3",
        "--candidates",
        "8",
        "--samples",
        "32",
        "-o",
        str(tmp_path / "l.json"),
    ]
    code, output = _cli(args)
    assert code == 0, output
    levels = json.loads((tmp_path / "l.json").read_text())
    assert levels["spec"] == f"{MODULE}:Fade" and levels["config"]["params"] == {"fraction": 0.6, "power": 2}
    assert levels["data"]["dataset"] == "synthetic"
    args = ["check-operator", f"{MODULE}:Fade", "--set", "corruption.params.power=2", "--dataset", "synthetic"]
    code, output = _cli(args)
    assert code == 0 and "obeys every law" in output, output


def _error(args: list[str]) -> str:
    code, output = _cli(args)
    assert code == 2, output
    assert "Traceback" not in output and output.startswith("error:"), output
    assert len(output.strip().splitlines()) == 1 or "error:" not in output.strip().splitlines()[1], output
    return " ".join(output.split())


@pytest.mark.parametrize(
    ("spec", "sets", "expected"),
    [
        ("nosuchmod_xyz:Op", [], ["cannot import plugin module 'nosuchmod_xyz'", "PYTHONPATH"]),
        (f"{MODULE}:Nope", [], [f"plugin module '{MODULE}' has no class 'Nope'", "it defines Fade"]),
        (f"{MODULE}:Plain", [], ["is not a LinearCorruption subclass"]),
        (f"{MODULE}:NUMBER", [], ["is not a LinearCorruption subclass (it is the int 3)"]),
        ("missing/ops.py:Op", [], ["plugin file", "ops.py does not exist"]),
        ("BROKEN:Op", [], ["raised RuntimeError on import: boom at import"]),
        (f"{MODULE}:", [], ["must end in :ClassName"]),
        ("not-a-module:Op", [], ["neither a dotted module path nor a .py file"]),
        (f"{MODULE}:Fade", ["corruption.params.nope=1"], ["corruption.params.nope", "has no parameter 'nope'"]),
        (f"{MODULE}:Fade", ["corruption.params.power=abc"], ["corruption.params.power", "valid integer"]),
        (f"{MODULE}:Fade", ["corruption.params.fraction=true"], ["corruption.params.fraction", "not the boolean"]),
        (f"{MODULE}:Fade", ["corruption.params.fraction=2"], ["fraction must lie in [0, 1], got 2"]),
        ("blur", ["corruption.params.power=2"], ["the spec names none"]),
    ],
)
def test_bad_plugin_references_and_params_are_one_clean_error(
    spec: str, sets: list[str], expected: list[str], plugin_dir: Path, tmp_path: Path
) -> None:
    spec = spec.replace("BROKEN", str(plugin_dir / "broken.py"))
    args = ["train", *TINY, *QUIET, "-c", spec, *(x for s in sets for x in ("--set", s)), "--out", str(tmp_path / "r")]
    message = _error(args)
    for part in expected:
        assert part in message, message
    assert not (tmp_path / "r").exists()  # refused before the run folder or the data


def test_several_plugins_take_one_params_table_per_class(plugin_dir: Path) -> None:
    spec = f"{MODULE}:Fade+{plugin_dir / 'fileops.py'}:Fade"
    with pytest.raises(ValueError, match="called the same"):
        CorruptionConfig(spec=spec, params={"Fade": {"power": 2}})
    # without a table the two may share a class name: each part carries its own arguments
    same = CorruptionConfig(spec=f"{MODULE}:Fade:power=2+{plugin_dir / 'fileops.py'}:Fade:power=3").operator((8, 8))
    assert [part.power for part in same.parts()] == [2, 3]
    for params in ({"power": 2}, {"Fade": {"power": 2}}):  # a single plugin: plain or keyed by its class
        config = CorruptionConfig(spec=f"blur+{MODULE}:Fade", params=params)
        assert repr(config.operator((8, 8))).startswith("Fade(fraction=0.9, power=2) @ GaussianBlur(")
    (plugin_dir / "softdiff_test_other.py").write_text(SOURCE.replace("class Fade", "class Fade2"))
    two = CorruptionConfig(
        spec=f"{MODULE}:Fade+softdiff_test_other:Fade2", params={"Fade2": {"power": 3}, "Fade": {"fraction": 0.5}}
    )
    assert repr(two.operator((8, 8))) == "Fade2(fraction=0.9, power=3) @ Fade(fraction=0.5, power=1)"
    with pytest.raises(ValueError, match=r"corruption.params.power: with several plugins, params hold one table per"):
        CorruptionConfig(spec=f"{MODULE}:Fade+softdiff_test_other:Fade2", params={"power": 3})


def test_an_operator_may_declare_its_params_model(plugin_dir: Path) -> None:
    (plugin_dir / "softdiff_test_declared.py").write_text(
        SOURCE
        + textwrap.dedent(
            """
            from pydantic import BaseModel, Field


            class Strict(Fade):
                class Params(BaseModel):
                    fraction: float = Field(0.5, gt=0, lt=1)
            """
        )
    )
    config = CorruptionConfig(spec="softdiff_test_declared:Strict", params={"fraction": 1.5})
    with pytest.raises(ValueError, match=r"corruption.params.fraction: Input should be less than 1 \(parameter of"):
        config.plugins()
    with pytest.raises(ValueError, match="has no parameter 'power'"):
        CorruptionConfig(spec="softdiff_test_declared:Strict", params={"power": 2}).plugins()
    assert (
        repr(CorruptionConfig(spec="softdiff_test_declared:Strict").operator((4, 4))) == "Strict(fraction=0.5, power=1)"
    )


def test_python_train_takes_an_operator_object_and_records_it(plugin_dir: Path, tmp_path: Path) -> None:
    fade = __import__(MODULE).Fade(0.3, 2)
    assert reference_of(fade) == (f"{MODULE}:Fade", {"fraction": 0.3, "power": 2})
    # a parameter kept as a derived object falls back to its default when that rebuilds the same operator
    assert reference_of(FadeToMean(0.5)) == (
        "softdiff.corrupt.fade:FadeToMean",
        {"max_fraction": 0.5, "per_channel": False},
    )
    assert "its parameter 'schedule' was given as Geometric(0.1, 0.5), which is not a JSON value" in reference_of(
        FadeToMean(0.5, schedule=Geometric(0.1, 0.5))
    )
    train(config(steps=2), tmp_path / "run", data=DATA, net=tiny_net(), progress=False, corruption=fade)
    stored = read_checkpoint(tmp_path / "run").config
    assert (stored.corruption.spec, stored.corruption.params) == (f"{MODULE}:Fade", {"fraction": 0.3, "power": 2})
    assert repr(load_run(tmp_path / "run", net=tiny_net()).process.operator) == "Fade(fraction=0.3, power=2)"
    # resuming with the same object (and the same config) continues; another object is refused
    net = tiny_net()
    summary = train(config(steps=3), tmp_path / "run", data=DATA, net=net, progress=False, corruption=fade, resume=True)
    assert summary.step == 3
    other = __import__(MODULE).Fade(0.3, 1)
    with pytest.raises(ValueError, match="cannot change corruption when resuming"):
        train(config(steps=4), tmp_path / "run", data=DATA, net=net, progress=False, corruption=other, resume=True)
    with pytest.raises(
        ValueError, match=r"as the checkpoint being resumed records it \(operator.args.power: 1 here, 2"
    ):
        train(None, tmp_path / "run", data=DATA, net=net, progress=False, corruption=other, resume=True)


def test_an_operator_object_that_cannot_be_recorded_warns_and_loads_only_when_given(tmp_path: Path) -> None:
    class Local(LinearCorruption):  # defined in a function: no module:Class can name it
        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.warns(UserWarning, match="cannot be recorded in config.json .*not defined at the top level"):
        train(config(steps=2), tmp_path / "run", data=DATA, net=tiny_net(), progress=False, corruption=Local())
    assert read_checkpoint(tmp_path / "run").config.corruption.spec == "custom"
    with pytest.raises(ValueError, match=r"could not be recorded \(Local\(\)\); only Python can load it"):
        load_run(tmp_path / "run", net=tiny_net())
    assert repr(load_run(tmp_path / "run", net=tiny_net(), corruption=Local()).process.operator) == "Local()"
    with pytest.raises(
        ValueError, match=r"config.json records it \(operator.class: \"softdiff.corrupt.identity:Identity"
    ):
        load_run(tmp_path / "run", net=tiny_net(), corruption=Identity())


def test_an_operator_registered_with_other_params_is_refused_when_the_run_loads(tmp_path: Path) -> None:
    """The launcher case: training registered a name with one parameter, sampling with another."""
    register_corruption("plugtest_fade", lambda c, s: FadeToMean(0.5))
    cfg = config(steps=2).model_copy(update={"corruption": CorruptionConfig(spec="plugtest_fade")})
    train(cfg, tmp_path / "run", data=DATA, net=tiny_net(), progress=False)
    register_corruption("plugtest_fade", lambda c, s: FadeToMean(0.8), replace=True)
    with pytest.raises(ValueError, match=r"records it \(operator.args.max_fraction: 0.8 here, 0.5 recorded\)"):
        load_run(tmp_path / "run", net=tiny_net())
    code, output = _cli(["sample", "--ckpt", str(tmp_path / "run"), "-n", "2", "--steps", "2", "--device", "cpu"])
    assert code == 2 and "max_fraction: 0.8 here, 0.5 recorded" in output, output


def test_registries_refuse_taken_names_unless_replace_is_asked() -> None:
    registry: Registry[int] = Registry("thing")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="thing 'a' is already registered; pass replace=True"):
        registry.register("a", 2)
    registry.register("a", 3, replace=True)
    assert registry["a"] == 3 and "a" in registry and registry.names() == ["a"]
    with pytest.raises(ValueError, match="unknown thing 'b'; choose one of a"):
        registry.get("b")
    with pytest.raises(ValueError, match="identifiers"):
        registry.register("a b", 1)
    for register, name in [
        (lambda name: register_corruption(name, lambda c, s: Identity()), "blur"),
        (lambda name: register_sampler(name, lambda *a, **k: None), "euler"),
        (lambda name: register_dataset(name, lambda split, data_dir: DATA), "synthetic"),
        (lambda name: OBJECTIVES.register(name, object), "soft"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(ValueError, match=f"'{name}' is already registered"):
            register(name)
    assert repr(CorruptionConfig(spec="blur+blur").operator((8, 8))).count("GaussianBlur") == 2


def test_nproc_workers_import_a_plugin_the_launcher_found_on_its_own_path(plugin_dir: Path, tmp_path: Path) -> None:
    """A launcher script puts the plugin folder on ``sys.path``; torchrun's workers must find it too."""
    launcher = tmp_path / "launch.py"
    launcher.write_text(
        f"import sys\nsys.path.insert(0, {str(plugin_dir)!r})\nfrom softdiff.cli.app import main\nmain()\n"
    )
    out = tmp_path / "run"
    args = ["train", "--nproc", "2", *TINY, "--device", "cpu", "--no-progress", "-c", f"{MODULE}:Fade"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(launcher), *args, "--set", "corruption.params.power=2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ckpt = read_checkpoint(out)
    assert ckpt.state["world_size"] == 2 and ckpt.config.operator == "Fade(fraction=0.9, power=2)"
    sample = [*_sample_args(out, tmp_path / "two"), "--nproc", "2", "--no-progress"]
    command = [sys.executable, str(launcher), *sample]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert np.load(tmp_path / "two" / "samples.npz")["images"].shape == (4, 1, 16, 16)


def test_a_checkpoint_naming_an_unknown_corruption_says_which_field_and_why(tmp_path: Path) -> None:
    """A name only a launcher registered: the error names the field and the name, not "1 validation error"."""
    train(config(steps=2), tmp_path / "run", data=DATA, net=tiny_net(), progress=False)
    folder = read_checkpoint(tmp_path / "run").path
    stored = json.loads((folder / "config.json").read_text())
    stored["corruption"]["spec"] = "blur+launchergrey"
    (folder / "config.json").write_text(json.dumps(stored))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"]["config.json"] = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"config.json is invalid \(corruption.spec: unknown corruption 'launcher"):
        read_checkpoint(tmp_path / "run")


def test_python_train_takes_a_whole_process_and_records_its_noise_and_levels(plugin_dir: Path, tmp_path: Path) -> None:
    process = CorruptionProcess(__import__(MODULE).Fade(0.5, 1), LinearNoise(0.02, 0.2), LevelTable([0.0, 0.3, 1.0]))
    train(config(steps=2), tmp_path / "run", data=DATA, net=tiny_net(), progress=False, corruption=process)
    stored = read_checkpoint(tmp_path / "run").config.corruption
    assert stored.noise.schedule == "linear" and (stored.noise.s_min, stored.noise.s_max) == (0.02, 0.2)
    assert stored.levels == [0.0, 0.3, 1.0] and stored.spec == f"{MODULE}:Fade"
    rebuilt = load_run(tmp_path / "run", net=tiny_net()).process
    t = torch.linspace(0, 1, 5)
    assert torch.allclose(rebuilt.s(t), process.s(t)) and torch.equal(
        rebuilt.time(t, torch.zeros(5, 1, 2, 2)), process.time(t, torch.zeros(5, 1, 2, 2))
    )
