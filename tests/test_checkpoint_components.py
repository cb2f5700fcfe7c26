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
    assert manifest["components"] == ["net", "ema", "prior", "precond", "optimizer", "rng", "trainer"]
    assert {c.file for c in COMPONENTS if c.name != "class_prior"} <= set(manifest["sha256"])  # unconditional run
    assert "class_prior.safetensors" not in manifest["sha256"]
    assert read_checkpoint(run).path == folder


def test_save_refuses_a_missing_or_unknown_component(run: Path, tmp_path: Path) -> None:
    config = read_checkpoint(run).config
    with pytest.raises(ValueError, match="missing \\['optimizer', 'rng', 'trainer'\\]"):
        save_checkpoint(tmp_path, 1, config, {"net": {}, "ema": {}, "prior": {}})
    with pytest.raises(ValueError, match="unknown \\['extra', 'state'\\]"):  # one state.pt is read, never written
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


def test_every_component_reads_back_what_it_wrote() -> None:
    from softdiff.train.checkpoint import LEGACY_STATE

    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    states = {
        "tensors": {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor([3], dtype=torch.int64)},
        "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state()},
        "trainer": {"step": 7, "world_size": 2, "window": {"loss": 0.1 + 0.2, "good": 3.0, "steps": 3}},
    }
    for component in (*COMPONENTS, LEGACY_STATE):
        state = states.get(component.name, states["tensors"] if component.tensors else states["optimizer"])
        back = component.from_state_dict_bytes(component.state_dict_bytes(state, "id"), "here")
        if component.name == "trainer":
            assert back == state  # the float window survives JSON bit for bit
        elif component.tensors:
            assert back.keys() == state.keys() and all(torch.equal(back[k], v) for k, v in state.items())
        else:
            assert back["param_groups"] == state["param_groups"]
            assert torch.equal(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])


@pytest.mark.parametrize(
    ("file", "data", "message"),
    [
        ("trainer.json", b"{not json", "trainer.json is not valid JSON"),
        ("trainer.json", b'{"step": -1}', "no valid step in trainer.json"),
        ("trainer.json", b"[1, 2]", "trainer.json is not valid JSON (not a JSON object)"),
        ("optimizer.pt", b"PK\x03\x04 broken", "optimizer.pt is not a weights-only torch file"),
        (
            "rng.safetensors",
            save_safetensors({"torch": torch.zeros(3, dtype=torch.uint8)}),
            "random-number state in rng",
        ),
    ],
)
def test_a_damaged_training_state_component_is_one_line(
    run: Path, tmp_path: Path, file: str, data: bytes, message: str
) -> None:
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(step_folder(run, 2), folder)
    (folder / file).write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"][file] = hashlib.sha256(data).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=None) as err:
        read_checkpoint(folder)
    assert message in str(err.value) and "\n" not in str(err.value)
