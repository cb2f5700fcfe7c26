"""Host reads and constant copies in one training step, counted on the CPU (each would stall a GPU).

On a GPU every ``.item()`` / ``bool()`` of a device value and every copy of a CPU constant to the
device waits for the GPU's queue to drain. On the CPU both still show as dispatched ops: a host
read is ``aten._local_scalar_dense``, and a float64 constant (a level table, the data's mean)
moved into a float32 batch is a ``_to_copy`` from float64. This trains a tiny default blur run
(selected levels, 8x8 synthetic images; ``tests/test_step_syncs.py``'s setting) for
``--steps`` steps per parameterisation and counts both inside each step after the first (the
first makes the device copies that later steps reuse). Target: 0 of each. Run it on an older
checkout (``PYTHONPATH=OLD``) to see what a change removed; ``bench/speed/gpu_scale.py`` counts the
real synchronisations on CUDA.

    PYTHONPATH=$PWD python -m bench.speed.step_syncs
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch.utils._python_dispatch import TorchDispatchMode

from bench.harness import Result, write_result
from bench.harness.cli import apply_threads
from softdiff.data import synthetic_shapes
from softdiff.train import RunConfig, train
from softdiff.train import trainer as trainer_module

console = Console(width=120)
PARAMETERISATIONS = ("precond", "precond_dct", "x0")


class StepOps(TorchDispatchMode):
    """Host reads and float64 -> other copies dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = self.copies = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = str(func.overloadpacket)
        self.reads += name == "aten._local_scalar_dense"
        to_other = (kwargs or {}).get("dtype") not in (None, torch.float64)
        self.copies += name == "aten._to_copy" and args[0].dtype == torch.float64 and to_other
        return func(*args, **(kwargs or {}))


def count(parameterisation: str, steps: int) -> list[dict[str, int]]:
    """Reads and copies of each step after the first of a tiny default blur run."""
    counted: list[StepOps | None] = []
    step = trainer_module._Step.__call__

    def wrapped(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not counted:
            counted.append(None)
            return step(self, *args, **kwargs)
        with StepOps() as ops:
            out = step(self, *args, **kwargs)
        counted.append(ops)
        return out

    config = RunConfig.model_validate(
        {
            "corruption": {"spec": "blur"},
            "objective": {"parameterisation": parameterisation},
            "data": {"dataset": "synthetic", "prior_images": 64, "prior_rank": 4},
            "model": {"base_channels": 8, "channel_mults": [1, 2]},
            "train": {"batch_size": 8, "steps": steps, "preview_every": None, "device": "cpu"},
        }
    )
    trainer_module._Step.__call__ = wrapped  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            train(config, Path(tmp) / "run", data=synthetic_shapes(64, size=8, seed=0), progress=False)
    finally:
        trainer_module._Step.__call__ = step  # type: ignore[method-assign]
    return [{"reads": ops.reads, "copies": ops.copies} for ops in counted[1:] if ops is not None]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="steps per run (the first is not counted)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default=None)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be >= 2")
    apply_threads(args.threads)
    metrics: dict[str, Any] = {}
    table = Table(title="per training step after the first (target 0 and 0)")
    for column in ("parameterisation", "host reads", "float64 copies"):
        table.add_column(column, justify="left" if column == "parameterisation" else "right")
    for name in PARAMETERISATIONS:
        steps = count(name, args.steps)
        metrics[name] = {"per_step": steps, "max_reads": max(s["reads"] for s in steps)}
        metrics[name]["max_copies"] = max(s["copies"] for s in steps)
        table.add_row(name, str(metrics[name]["max_reads"]), str(metrics[name]["max_copies"]))
    console.print(table)
    parameters = {"steps": args.steps, "corruption": "blur", "image": [1, 8, 8], "batch": 8}
    write_result(Result.now("speed", "step_syncs", parameters, metrics, tag=args.tag))


if __name__ == "__main__":
    main()
