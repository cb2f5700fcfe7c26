"""A checkpoint is a set of named components; the manifest lists them; checkpoints written before that still load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from softdiff.data import synthetic_shapes
from softdiff.train import RunConfig, load_run, read_checkpoint, train
from softdiff.train.checkpoint import COMPONENTS, save_checkpoint, step_folder
from softdiff.train.consistency import IDENTITY_KEY, config_identity

DATA = synthetic_shapes(n=64, size=8, seed=0)
SMALL = {"base_channels": 4, "channel_mults": [1], "groups": 2}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = RunConfig.model_validate(
        {
            "corruption": {"spec": "noise"},
            "model": SMALL,
            "data": {"dataset": "synthetic", "prior_images": 32, "prior_rank": 2, "prior_mixtures": 1},
            "objective": {"params": {"anchor": 2.0}},
            "train": {"steps": 2, "batch_size": 4, "device": "cpu", "select_levels": False, "preview_every": None},
        }
    )
    out = tmp_path_factory.mktemp("run") / "run"
    train(config, out, data=DATA, progress=False)
    return out


def test_the_manifest_lists_the_components_present(run: Path) -> None:
    folder = step_folder(run, 2)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["components"] == ["net", "ema", "prior", "precond", "state"]
    assert {c.file for c in COMPONENTS if c.name != "class_prior"} <= set(manifest["sha256"])  # unconditional run
    assert "class_prior.safetensors" not in manifest["sha256"]
    assert read_checkpoint(run).path == folder


def test_save_refuses_a_missing_or_unknown_component(run: Path, tmp_path: Path) -> None:
    config = read_checkpoint(run).config
    with pytest.raises(ValueError, match="missing \\['state'\\]"):
        save_checkpoint(tmp_path, 1, config, {"net": {}, "ema": {}, "prior": {}})
    with pytest.raises(ValueError, match="unknown \\['extra'\\]"):
        save_checkpoint(tmp_path, 1, config, {"net": {}, "ema": {}, "prior": {}, "state": {}, "extra": {}})


def _as_written_by_main(folder: Path) -> None:
    """Rewrite a checkpoint in main's layout: flat objective keys, no network/plugins, no components in the manifest."""
    config = json.loads((folder / "config.json").read_text())
    objective = config["objective"]
    flat = {"anchor": objective["params"]["anchor"], "anchor_at": objective["params"]["anchor_at"]}
    flat |= {"p_mean": -1.2, "p_std": 1.2, "logit_mean": 0.0, "logit_std": 1.0}
    config["objective"] = {k: v for k, v in objective.items() if not k.endswith("params")} | flat
    del config["network"], config["plugins"]
    config_json = json.dumps(config, indent=2).encode()
    identity = config_identity(config_json)
    (folder / "config.json").write_bytes(config_json)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["components"]
    manifest["sha256"]["config.json"] = hashlib.sha256(config_json).hexdigest()
    for file in folder.glob("*.safetensors"):
        data = save_safetensors(load_safetensors(file.read_bytes()), metadata={IDENTITY_KEY: identity})
        file.write_bytes(data)
        manifest["sha256"][file.name] = hashlib.sha256(data).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def test_a_checkpoint_in_mains_layout_still_loads(run: Path, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(step_folder(run, 2), old)
    _as_written_by_main(old)
    assert "anchor" in json.loads((old / "config.json").read_text())["objective"]
    loaded, new = load_run(old), load_run(run)
    assert loaded.config == new.config and loaded.config.objective.params == {"anchor": 2.0, "anchor_at": "zero"}
    for (name, a), b in zip(loaded.net.state_dict().items(), new.net.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
