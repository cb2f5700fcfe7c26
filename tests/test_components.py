"""Config sections built from the registries: plugins, old configs, help text and the one home of each default."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from softdiff.cli.app import app
from softdiff.models import NETWORKS, UNetConfig
from softdiff.score import OBJECTIVES, PARAMETERISATIONS, T_SAMPLERS, WEIGHTINGS, Denoiser
from softdiff.score.precondition import DEFAULT_PARAMETERISATION
from softdiff.train import RunConfig, read_checkpoint

PLUGIN = textwrap.dedent(
    """
    import torch
    from pydantic import BaseModel
    from softdiff.score import X0Regression, register_objective, register_weighting
    from softdiff.models import Network, UNet, UNetConfig, register_network

    class Mine(X0Regression):
        class Params(BaseModel):
            scale: float = 2.0

        def __init__(self, process, weighting="uniform", t_sampler=None, scale=2.0):
            super().__init__(process, weighting, t_sampler)
            self.scale = scale

        def term(self, h, x0, x_t, t, s, generator=None):
            return self.scale * super().term(h, x0, x_t, t, s, generator)

    register_objective("mine", Mine)
    register_weighting("half", lambda t, s: 0.5 * torch.ones_like(t))
    register_network("tiny_unet", Network("a U-Net", UNet, UNetConfig))
    """
)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file for the module: a module registers its names once per process."""
    path = tmp_path_factory.mktemp("plugins") / "my_components.py"
    path.write_text(PLUGIN)
    return path


def test_a_plugin_objective_trains_through_the_cli(tmp_path: Path, plugin: Path) -> None:
    run = tmp_path / "run"
    flags = ["--dataset", "synthetic", "--steps", "2", "--batch-size", "4", "--threads", "1"]
    flags += ["--width", "4", "--set", "model.channel_mults=[1]", "--set", "model.groups=2", "--no-progress"]
    flags += [
        "--set",
        "data.prior_images=16",
        "--set",
        "train.select_levels=false",
        "--set",
        "train.preview_every=null",
    ]
    flags += [
        "--plugin",
        str(plugin),
        "--objective",
        "mine",
        "--weighting",
        "half",
        "--set",
        "objective.params.scale=3",
    ]
    flags += ["--set", "network=tiny_unet", "--corruption", "noise", "--out", str(run)]
    result = CliRunner().invoke(app, ["train", *flags])
    assert result.exit_code == 0, result.output
    config = read_checkpoint(run).config
    assert (config.objective.name, config.objective.params, config.objective.weighting) == (
        "mine",
        {"scale": 3.0},
        "half",
    )
    assert config.network == "tiny_unet" and config.plugins == [str(plugin)]


def test_a_plugin_component_is_refused_until_its_module_is_named(plugin: Path) -> None:
    with pytest.raises(ValidationError, match="objective.name: unknown objective 'nothing'"):
        RunConfig.model_validate({"objective": {"name": "nothing"}})
    deferred = RunConfig.model_validate({"plugins": [str(plugin)], "objective": {"weighting": "half"}})
    assert deferred.load_plugins().objective.weighting == "half"
    with pytest.raises(ValueError, match="did not register it"):
        RunConfig.model_validate({"plugins": [str(plugin)], "objective": {"weighting": "nope"}}).load_plugins()
    network = RunConfig.model_validate({"plugins": [str(plugin)], "network": "tiny_unet"}).load_plugins()
    assert isinstance(network.model, UNetConfig)


def test_old_flat_objective_keys_still_load() -> None:
    old = {"name": "soft", "anchor": 2.0, "anchor_at": "below", "weighting": "uniform", "parameterisation": "precond"}
    old |= {"t_sampler": "lognormal", "p_mean": -1.0, "p_std": 1.5, "logit_mean": 0.0, "logit_std": 1.0}
    oc = RunConfig.model_validate({"objective": old}).objective
    assert oc.params == {"anchor": 2.0, "anchor_at": "below"}
    assert oc.t_sampler_params == {"p_mean": -1.0, "p_std": 1.5}
    dsm = RunConfig.model_validate({"objective": {"name": "dsm", "anchor": 0.0, "anchor_at": "zero"}}).objective
    assert dsm.params == {} and dsm.anchor == 0.0
    with pytest.raises(ValidationError, match="anchor is no setting of the objective 'dsm'"):
        RunConfig.model_validate({"objective": {"name": "dsm", "anchor": 1.0}})
    with pytest.raises(ValidationError, match="objective.params.anchor"):
        RunConfig.model_validate({"objective": {"params": {"anchor": -1}}})


def test_an_old_config_json_round_trips_to_the_same_run() -> None:
    old = json.loads(RunConfig().model_dump_json())
    old["objective"] = {"name": "soft", "weighting": "uniform", "parameterisation": "precond", "anchor": 4.0}
    old["objective"] |= {"anchor_at": "zero", "t_sampler": "uniform", "p_mean": -1.2, "p_std": 1.2}
    old["objective"] |= {"logit_mean": 0.0, "logit_std": 1.0}
    del old["network"], old["plugins"]
    assert RunConfig.model_validate(old) == RunConfig()


def test_train_help_lists_every_registered_name_and_the_true_defaults() -> None:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    text = " ".join(result.output.split())
    built_in = {"plugin": ["mine", "half"]}  # registered by this module's plugin, after the help was made
    for registry in (OBJECTIVES, WEIGHTINGS, PARAMETERISATIONS):
        assert " | ".join(n for n in registry.names() if n not in built_in["plugin"]) in text
    assert "balanced | inverse_noise | normalised | uniform" in text
    defaults = RunConfig()
    assert f"(default: {defaults.objective.parameterisation})" in text and "(default: residual)" not in text
    assert f"(default: {defaults.model.base_channels})" in text
    assert T_SAMPLERS.names() == ["levels", "logitnormal", "lognormal", "uniform"]


def test_each_default_has_one_home() -> None:
    assert RunConfig().model == UNetConfig()  # the run's network is the class's default
    assert RunConfig().objective.parameterisation == DEFAULT_PARAMETERISATION
    assert "unet" in NETWORKS


def test_the_denoisers_default_is_the_runs_given_statistics() -> None:
    import torch

    from softdiff.corrupt import CorruptionConfig
    from softdiff.score import DataStatistics

    process = CorruptionConfig(spec="noise").build((4, 4))
    net = torch.nn.Identity()
    assert Denoiser(net, process).parameterisation == "residual"
    stats = DataStatistics.estimate(process, torch.randn(8, 1, 4, 4), grid=3)
    assert Denoiser(net, process, stats=stats).parameterisation == DEFAULT_PARAMETERISATION
