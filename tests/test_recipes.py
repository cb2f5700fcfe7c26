"""The paper's recipes (recipes/*.toml): they load, build the documented network, and train end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from softdiff.cli.app import app
from softdiff.models import UNet
from softdiff.train import build_config

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
SIDES = {"cifar10": 32, "celeba64": 64}  # the image side each recipe trains at
PARAMETERS = 50_308_867  # docs/recipes.md; both recipes share the network
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", sorted(SIDES))
def test_the_recipe_network_has_the_documented_shape_and_trains_at_its_real_size(name: str) -> None:
    config = build_config(RECIPES / f"{name}.toml")
    assert config.corruption.spec == "blur" and config.corruption.noise.s_max == 0.1
    model = config.resolved(3, SIDES[name]).model
    assert model.channel_mults == (1, 2, 2, 2) and model.num_res_blocks == 4
    assert [model.level_sizes[i] for i in model.attention_levels] == [16]
    torch.manual_seed(0)
    net = UNet(model)
    assert sum(p.numel() for p in net.parameters()) == PARAMETERS
    with torch.no_grad():
        net.conv_out.weight.normal_(0, 0.01)  # the zero-initialised output would stop every gradient but its own
    x = torch.randn(1, 3, SIDES[name], SIDES[name])
    out = net(x, torch.tensor([0.5]))
    assert out.shape == x.shape
    out.square().mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert float(net.conv_in.weight.grad.abs().sum()) > 0  # reached the first layer


def _colour_folder(folder: Path, side: int, n: int = 8) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("name", sorted(SIDES))
def test_softdiff_train_runs_the_recipe_file_at_a_reduced_width(name: str, tmp_path: Path) -> None:
    """The file as users pass it; the width is cut to 32 channels (groups 32) so a step takes a second."""
    folder = _colour_folder(tmp_path / "photos", SIDES[name])
    args = ["train", "--config", str(RECIPES / f"{name}.toml"), "--dataset", "folder", "--data-dir", str(folder)]
    args += ["--image-size", str(SIDES[name]), "--width", "32", "--steps", "1", "-b", "2", "--device", "cpu"]
    args += ["--set", "data.prior_images=8", "--threads", "1", "--no-progress", "--out", str(tmp_path / "run")]
    # the level selection a fresh blur run does first (about a minute at 64x64x3) is tested on its own
    # (tests/test_select_levels.py, bench/speed/schedule_scale.py); here it would be most of the test's time
    # as is the preview grid drawn after the last step (64 samples of the full-depth network: most of the rest)
    args += ["--set", "train.select_levels=false", "--set", "train.preview_every=null"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    stored = build_config(tmp_path / "run" / "config.json")
    assert stored.data.image_size == SIDES[name] and stored.model.in_channels == 3
    assert (
        stored.model.num_res_blocks == 4
        and stored.corruption.blur.sigma_max == build_config(RECIPES / f"{name}.toml").corruption.blur.sigma_max
    )


def test_a_recipe_that_does_not_fit_the_data_size_is_one_error_line(tmp_path: Path) -> None:
    """The CelebA-64 recipe on 28x28 Fashion-MNIST-sized data: refused before any training."""
    args = ["train", "--config", str(RECIPES / "celeba64.toml"), "--dataset", "synthetic", "--steps", "1"]
    result = runner.invoke(app, [*args, "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output.startswith("error: "), result.output
    assert "Traceback" not in result.output and not (tmp_path / "run" / "config.json").exists()


def test_a_recipe_whose_attention_level_the_image_size_lacks_is_one_error_line(tmp_path: Path) -> None:
    """At 256 px the levels are 256..32: no 16x16 level for the recipe's attention."""
    folder = _colour_folder(tmp_path / "photos", 40, n=2)
    args = ["train", "--config", str(RECIPES / "cifar10.toml"), "--dataset", "folder", "--data-dir", str(folder)]
    result = runner.invoke(app, [*args, "--image-size", "256", "--steps", "1", "--no-progress", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith("error: invalid configuration: model: attention_resolutions [16] match no level")
    assert "model.attention_resolutions" in result.output and "Traceback" not in result.output
