"""Time grids are registry entries with settings: a plugin's grid works like a built-in one, CLI included."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.corrupt import CorruptionConfig
from softdiff.eval.sweeps import parse_grids
from softdiff.samplers import GRIDS, GridRule, edm_grid, parse_grid, register_grid, time_grid, uniform_grid
from softdiff.samplers.core import SAMPLERS

runner = CliRunner()


@pytest.fixture(scope="module")
def process():
    return CorruptionConfig(spec="blur").build((1, 16, 16))


def test_the_built_in_grids_are_registry_entries_and_edm_takes_rho(process) -> None:
    assert set(GRIDS) == {"auto", "uniform", "log-noise", "edm", "levels"}
    assert torch.equal(time_grid("edm:rho=3", process, 6), edm_grid(process, 6, rho=3.0))
    assert not torch.equal(time_grid("edm:rho=3", process, 6), time_grid("edm", process, 6))
    assert torch.equal(time_grid("edm", process, 6), edm_grid(process, 6))  # the default rho is EDM's 7
    stopped = time_grid("edm:0.1:rho=3", process, 5)  # a stop and a setting together
    assert torch.equal(stopped[:-1], edm_grid(process, 4, rho=3.0, t_min=0.1)) and stopped[-1] == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("edm:rho=0", "rho: Input should be greater than 0"),
        ("edm:sigma=1", "edm takes no setting 'sigma' (its settings: rho)"),
        ("uniform:rho=3", "uniform takes no setting 'rho' (its settings: none)"),
        ("edm:rho=nan", "rho must be finite"),
        ("cosine", "unknown grid 'cosine'; choose one of auto, edm, levels, log-noise, uniform"),
        ("levels.json:0.5", "a level JSON file takes neither a stop nor settings"),
        ("edm:", "has an empty stop"),
    ],
)
def test_bad_grid_specs_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as err:
        parse_grid(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_registered_grid_is_selected_by_name_and_checked(process) -> None:
    register_grid(
        "test-square",
        GridRule("t = (1 - i/K)^2", lambda p, steps, t_min, params: uniform_grid(steps) ** 2),
        replace=True,
    )
    try:
        assert "test-square" in GRIDS
        assert torch.allclose(
            time_grid("test-square", process, 4), torch.tensor([1, 0.5625, 0.25, 0.0625, 0.0]).double()
        )
        with pytest.raises(ValueError, match="choose one of .*test-square"):
            parse_grid("nope")
        # a plugin grid that breaks the rules is refused, not used
        register_grid("test-bad", GridRule("too short", lambda p, steps, t_min, params: uniform_grid(steps - 1)))
        with pytest.raises(ValueError, match="it must give steps \\+ 1 = 5 times from 1 down to 0"):
            time_grid("test-bad", process, 4)
        with pytest.raises(ValueError, match="already registered"):
            register_grid("edm", GridRule("mine", lambda p, steps, t_min, params: uniform_grid(steps)))
        with pytest.raises(ValueError, match="a grid entry is a GridRule"):
            register_grid("test-fn", lambda p, steps, t_min, params: uniform_grid(steps))  # type: ignore[arg-type]
    finally:
        for name in ("test-square", "test-bad"):
            if name in GRIDS:
                GRIDS.remove(name)


def test_eval_grid_lists_keep_a_grids_several_settings_together() -> None:
    assert parse_grids("edm:rho=5,uniform,edm:levels:rho=3") == ["edm:rho=5", "uniform", "edm:levels:rho=3"]
    with pytest.raises(ValueError, match="edm takes no setting 'b'"):
        parse_grids("edm:rho=5,b=2,uniform")  # b=2 continues edm's settings, and edm has no b


PLUGIN = """
    from softdiff.samplers import GridRule, register_grid, register_sampler, naive, uniform_grid

    register_grid("plugin-square", GridRule("squared", lambda p, steps, t_min, params: uniform_grid(steps) ** 2),
                  replace=True)
    register_sampler("plugin_naive", naive, replace=True)
"""


def test_sample_accepts_a_plugins_grid_and_sampler(run_dir: Path, tmp_path: Path) -> None:
    plugin = tmp_path / "mygrids.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    out = tmp_path / "s"
    args = ["sample", "--ckpt", str(run_dir), "--steps", "2", "-n", "2", "--out", str(out), "--no-progress"]
    refused = runner.invoke(app, [*args, "--grid", "plugin-square"])
    assert refused.exit_code == 2 and "unknown grid 'plugin-square'" in refused.output
    try:
        result = runner.invoke(
            app, [*args, "--grid", "plugin-square", "--sampler", "plugin_naive", "--plugin", str(plugin)]
        )
    finally:  # the plugin's names must not leak into the other tests of this process
        for registry, name in ((GRIDS, "plugin-square"), (SAMPLERS, "plugin_naive")):
            if name in registry:
                registry.remove(name)
    assert result.exit_code == 0, result.output
    meta = json.loads(str(np.load(out / "samples.npz")["meta"]))
    assert (meta["grid"], meta["sampler"], meta["times"]) == ("plugin-square", "plugin_naive", [1.0, 0.25, 0.0])
    help_text = runner.invoke(app, ["sample", "--help"]).output
    assert "--plugin" in help_text and "edm:rho=5" in help_text
