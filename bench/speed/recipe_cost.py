"""Size and cost of the paper's recipes (recipes/*.toml): parameters, FLOPs, and softdiff's trainer on CPU.

Usage: ``PYTHONPATH=$PWD python bench/speed/recipe_cost.py [--steps 3] [--batch 8] [--threads 1]``.

For each recipe the network is built at the recipe's data shape; its parameters are counted
and the FLOPs of one forward pass of one image are counted with
``torch.utils.flop_counter`` (a multiply-add is 2 FLOPs). Then softdiff's trainer runs
``--steps`` steps of ``--batch`` images on a synthetic colour folder at the recipe's size
(CelebA and CIFAR-10 are not on this machine; the network's cost does not depend on the
pixels). The loop's images per second is the trainer's own figure. The GPU hours in the
output are an *estimate* from the FLOP count, for an assumed sustained throughput, not a
measurement. Results go to ``bench/results/recipe_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.harness import Result, write_result
from bench.speed.schedule_scale import make_colour_folder
from softdiff.models import UNet
from softdiff.train import build_config, train

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {"cifar10": 32, "celeba64": 64}  # recipe -> image side it trains at
TRAINING_IMAGES = 200e6  # EDM's CIFAR-10 budget (200 Mimg), the assumption of docs/recipes.md
ASSUMED_TFLOPS = 200.0  # sustained dense bf16 on one large GPU: an assumption, not a measurement


def forward_flops(net: UNet, side: int) -> int:
    """FLOPs of one forward pass of one ``3 x side x side`` image."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, side, side), torch.full((1,), 0.5))
    return int(counter.get_total_flops())


def trainer_speed(recipe: Path, folder: Path, side: int, args: argparse.Namespace) -> dict[str, float]:
    """softdiff's trainer on the recipe as written but for data, steps, batch and device."""
    overrides = {
        "data.dataset": "folder",
        "data.data_dir": str(folder),
        "data.image_size": side,
        "data.channels": 3,
        "data.prior_images": 64,
        "train.steps": args.steps,
        "train.batch_size": args.batch,
        "train.device": "cpu",
        "train.threads": args.threads,
        "optim.warmup": 1,
    }
    config = build_config(recipe, overrides)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = train(config, Path(out) / "run", progress=False)
        wall = time.perf_counter() - start
    return {"images_per_s": round(summary.images_per_s, 3), "wall_s_with_setup": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    record: dict[str, object] = {
        "benchmark": "recipe_cost",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "torch": torch.__version__,
        "threads": args.threads,
        "steps": args.steps,
        "batch": args.batch,
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "training_images_assumed": TRAINING_IMAGES,
        "assumed_sustained_tflops": ASSUMED_TFLOPS,
        "recipes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, side in RECIPES.items():
            recipe = ROOT / "recipes" / f"{name}.toml"
            model = build_config(recipe).resolved(3, side).model
            net = UNet(model)
            flops = forward_flops(net, side)
            folder = make_colour_folder(Path(tmp) / name, 4 * args.batch, side)
            # a training image costs about 3 forward passes (forward + backward)
            hours = 3 * flops * TRAINING_IMAGES / (ASSUMED_TFLOPS * 1e12) / 3600
            record["recipes"][name] = {  # type: ignore[index]
                "image": [3, side, side],
                "parameters": sum(p.numel() for p in net.parameters()),
                "forward_gflops_per_image": round(flops / 1e9, 2),
                "cpu": trainer_speed(recipe, folder, side, args),
                "estimated_gpu_hours_at_assumed_tflops": round(hours, 1),
            }
            print(name, json.dumps(record["recipes"][name]), flush=True)  # type: ignore[index]
    record["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    write_result(Result.now("speed", "recipe_cost", dict(vars(args)), record), args.out)


if __name__ == "__main__":
    main()
