"""``softdiff features train``: train the Fashion-MNIST feature network used for offline FID/KID."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from ..data import load_dataset
from ..eval.features import FEATURE_NET_PATH, save_feature_net, train_feature_net
from ..resources import writable_file
from ..seeding import MAX_SEED
from .common import console, user_errors

app = typer.Typer(help="The domain feature network behind offline FID/KID.", no_args_is_help=True)


@app.command("train")
@user_errors
def train(
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the 60k training images.")] = 3,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed for initialisation, shuffling and dropout.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 128,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate of the one-cycle schedule.")] = 3e-3,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder holding the Fashion-MNIST files.")] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Weights file (.safetensors; its record goes beside it as .json). The shipped copy is "
            "softdiff/assets/fashion_feature_net.safetensors.",
        ),
    ] = Path(FEATURE_NET_PATH.name),
) -> None:
    """Train the feature classifier reproducibly, report its test accuracy, write weights + record."""
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"--lr must be a positive finite number, got {lr}")
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must end in .safetensors, got {out}")
    writable_file(out, "--out weights file")  # before minutes of training
    train_data = load_dataset("fashion-mnist", "train", data_dir)
    test_data = load_dataset("fashion-mnist", "test", data_dir)
    net, record = train_feature_net(train_data, test_data, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr)
    weights, record_path = save_feature_net(net, record, out)
    console.print(json.dumps(record, indent=2), highlight=False)
    console.print(
        f"test accuracy {record['test_accuracy']:.4f} after {epochs} epochs in {record['train_seconds']:.0f} s; "
        f"wrote {weights} ({weights.stat().st_size / 1024:.0f} KiB) and {record_path}"
    )
