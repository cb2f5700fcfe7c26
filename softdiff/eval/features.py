"""A small Fashion-MNIST classifier whose penultimate activations are the offline FID features.

Inception-v3 weights cannot be downloaded on these machines, and Inception features of 28x28
grey images upscaled to 299x299 say little anyway. A classifier trained on the data set itself
gives domain features (as in the Soft Diffusion paper's own small-data evaluations); its
weights ship with the package so every user gets the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from ..data import ImageData
from ..imageio import atomic_write_bytes

__all__ = [
    "FeatureNet",
    "FEATURE_NET_PATH",
    "FEATURE_NET_VERSION",
    "train_feature_net",
    "classify_accuracy",
    "save_feature_net",
    "load_feature_net",
    "data_digest",
    "update_digest",
]

FEATURE_NET_VERSION = 1
FEATURE_NET_PATH = Path(__file__).resolve().parent.parent / "assets" / "fashion_feature_net.safetensors"


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class FeatureNet(nn.Module):
    """(conv-BN-ReLU-pool) x 3, a ``embed_dim`` embedding, a linear 10-class head (~99k parameters).

    Pooling right after the first conv keeps a training step cheap on a shared 2-core CPU;
    three epochs reach about 91% test accuracy.

    ``embed(x)`` (the pre-activation embedding, closer to Gaussian than a ReLU output) gives the
    features; ``forward(x)`` gives class logits for training. Input: ``(N, 1, 28, 28)`` in [-1, 1].
    """

    def __init__(self, embed_dim: int = 128, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        a, b, c = widths
        self.body = nn.Sequential(
            *_block(1, a),
            nn.MaxPool2d(2),  # 28 -> 14
            *_block(a, b),
            nn.MaxPool2d(2),  # 14 -> 7
            *_block(b, c),
            nn.MaxPool2d(2),  # 7 -> 3
            nn.Flatten(),
        )
        self.embedding = nn.Linear(c * 3 * 3, embed_dim)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(embed_dim, num_classes)
        self.embed_dim = embed_dim

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate activations ``(N, embed_dim)``: the domain features."""
        return self.embedding(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(F.relu(self.embed(x))))


def update_digest(h: hashlib._Hash, tensor: Tensor) -> None:
    """Feed a tensor's dtype, shape and bytes into a hash."""
    t = tensor.detach().cpu().contiguous().reshape(-1)
    h.update(f"{t.dtype}{tuple(tensor.shape)}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes())


def data_digest(images: Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes: identifies a data set (or any tensor) exactly."""
    h = hashlib.sha256()
    update_digest(h, images)
    return h.hexdigest()


@torch.no_grad()
def classify_accuracy(net: FeatureNet, data: ImageData, batch_size: int = 1000) -> float:
    """Fraction of ``data`` whose label the network predicts."""
    if data.labels is None:
        raise ValueError("accuracy needs a labelled data set")
    net.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        idx = slice(start, start + batch_size)
        correct += int((net(data.batch(idx)).argmax(1) == data.labels[idx]).sum())
    return correct / len(data)


def _round_to_half(net: nn.Module) -> None:
    """Round weights through float16 in place: the accuracy we record is that of the stored weights."""
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())


def train_feature_net(
    train: ImageData,
    test: ImageData,
    *,
    epochs: int = 3,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 3e-3,
    progress: bool = True,
) -> tuple[FeatureNet, dict[str, Any]]:
    """Train a ``FeatureNet`` reproducibly (seeded init, shuffling, dropout); return it and its record.

    Adam with a one-cycle learning rate and no augmentation: the features should respond to
    exactly what the data looks like (Fashion-MNIST shoes all face one way, for instance).
    The returned weights are already rounded to float16, as they are stored.
    """
    if train.labels is None or test.labels is None:
        raise ValueError("training the feature net needs labelled train and test data")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = FeatureNet()
    steps_per_epoch = (len(train) + batch_size - 1) // batch_size
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    start_time = time.perf_counter()
    from ..progress import LoggedProgress

    with LoggedProgress(disable=not progress, transient=True) as bar:
        task = bar.add_task("training feature net", total=epochs * steps_per_epoch)
        for epoch in range(epochs):
            net.train()
            order = torch.randperm(len(train), generator=g)
            for i in range(steps_per_epoch):
                idx = order[i * batch_size : (i + 1) * batch_size]
                loss = F.cross_entropy(net(train.batch(idx)), train.labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(task, advance=1, description=f"epoch {epoch + 1}/{epochs} loss {loss.item():.3f}")
    seconds = time.perf_counter() - start_time
    net.eval()
    _round_to_half(net)
    record = {
        "name": "fashion-feature-net",
        "version": FEATURE_NET_VERSION,
        "embed_dim": net.embed_dim,
        "test_accuracy": classify_accuracy(net, test),
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "train_seconds": round(seconds, 1),
        "torch": torch.__version__,
        "train_data_sha256": data_digest(train.images),
        "test_data_sha256": data_digest(test.images),
        "storage_dtype": "float16",
    }
    return net, record


def save_feature_net(net: FeatureNet, record: dict[str, Any], path: str | Path) -> tuple[Path, Path]:
    """Write float16 safetensors weights and the JSON record beside them (``.json``)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"feature-net weights path must end in .safetensors, got {path}")
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    metadata = {"name": str(record["name"]), "version": str(record["version"]), "embed_dim": str(net.embed_dim)}
    atomic_write_bytes(path, save(tensors, metadata=metadata))
    json_path = path.with_suffix(".json")
    atomic_write_bytes(json_path, (json.dumps(record, indent=2) + "\n").encode())
    return path, json_path


def load_feature_net(path: str | Path | None = None) -> FeatureNet:
    """Load feature-net weights (the shipped ones by default) in eval mode, as float32."""
    path = Path(path) if path is not None else FEATURE_NET_PATH
    if not path.is_file():
        raise FileNotFoundError(path)
    try:
        state = load_file(path)
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable safetensors file ({err})") from None
    embed_dim = state["embedding.weight"].shape[0] if "embedding.weight" in state else 128
    net = FeatureNet(embed_dim=embed_dim)
    try:
        net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    except RuntimeError as err:
        raise ValueError(f"{path} does not hold FeatureNet weights ({str(err).splitlines()[0]})") from None
    return net.eval().requires_grad_(False)
