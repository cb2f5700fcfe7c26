"""bench/speed/gpu_scale.py: the GPU benchmark's CPU smoke run, and the network it builds at the recipe's size."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.harness.result import read_result, result_path
from bench.speed.gpu_scale import NETWORKS, TARGET, network_config
from softdiff.models.unet import UNet
from softdiff.train import build_net

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("gpu_scale")
    args = ["--device", "cpu", "--threads", "1", "--tiny", "--steps", "1", "--warmup", "1", "--repeats", "2"]
    args += ["--batch", "cifar10=2", "--batch", "small=2", "--tag", "test", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.speed.gpu_scale", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    files = list(out.glob("*.json"))
    assert len(files) == 1, files
    return read_result(files[0]), files[0], done.stdout


def test_the_tiny_cpu_run_records_both_networks_and_both_loops(tiny_result) -> None:
    result, path, stdout = tiny_result
    assert result.kind == "speed" and result.bench == "gpu_scale" and result.tag == "test"
    assert re.fullmatch(r"[0-9a-f]{7,40}", result.commit), result.commit
    assert path.name == result_path("speed", "gpu_scale", result.commit, result.dirty, "test").name
    assert result.threads == 1
    assert result.parameters["device"] == "cpu" and result.parameters["tiny"] is True
    networks = result.metrics["networks"]
    assert set(networks) == set(NETWORKS)
    for name, r in networks.items():
        assert set(r["loops"]) == {"trainer", "bare"}, name
        for loop in r["loops"].values():
            assert loop["images_per_s"] > 0 and loop["ms_per_step"] > 0
            assert len(loop["timing_ms"]["samples"]) == 2
            assert "RSS" in loop["memory_kind"]
        rates = [r["loops"][k]["images_per_s"] for k in ("trainer", "bare")]
        assert r["ratio"] == pytest.approx(rates[0] / rates[1])
        assert r["pass"] is (r["ratio"] >= TARGET)
        assert r["amp_bf16"] is False  # fp32 on the CPU
    assert networks["cifar10"]["image"] == [3, 8, 8] and networks["small"]["image"] == [1, 28, 28]
    assert result.parameters["compile"] == "off" and all(r["compile"] == "off" for r in networks.values())
    assert "PASS" in stdout or "FAIL" in stdout


def _attention_levels(config) -> list[int]:
    """Indices of the levels whose feature maps get attention (level 0 at full size)."""
    side = config.model.image_size
    sizes = [side // 2**i for i in range(len(config.model.channel_mults))]
    return [i for i, s in enumerate(sizes) if s in (config.model.attention_resolutions or ())]


def test_tiny_keeps_the_recipe_networks_shape() -> None:
    real = network_config("cifar10", 128, "cpu", "auto", "off", tiny=False)
    tiny = network_config("cifar10", 2, "cpu", "auto", "off", tiny=True)
    for key in ("channel_mults", "num_res_blocks", "mid_block", "downsample", "dropout", "in_channels"):
        assert getattr(tiny.model, key) == getattr(real.model, key), key
    assert tiny.model.base_channels < real.model.base_channels and tiny.model.image_size < real.model.image_size
    assert _attention_levels(tiny) == _attention_levels(real) == [1]


def test_the_recipe_network_at_real_size_has_the_documented_parameter_count() -> None:
    row = re.search(r"^\| cifar10 \| 3x32x32 \| ([\d,]+) \|", (ROOT / "docs" / "recipes.md").read_text(), re.M)
    assert row, "docs/recipes.md has no cifar10 row in its size table"
    config = network_config("cifar10", 128, "cpu", "auto", "off", tiny=False)
    assert config.image_shape == (3, 32, 32)
    with torch.device("meta"):  # no memory: the count only
        net = build_net(config)
    assert isinstance(net, UNet)
    assert sum(p.numel() for p in net.parameters()) == int(row.group(1).replace(",", ""))


def test_the_wrapper_is_valid_bash() -> None:
    done = subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_scale.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
