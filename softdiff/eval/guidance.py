"""Class-conditional evaluation: which class a classifier sees in each class's samples, against guidance.

The package's Fashion-MNIST classifier (:class:`~softdiff.eval.features.FeatureNet`, the
net behind the offline FID features) labels every sample; a class's accuracy is the
fraction of the samples drawn for it that the classifier assigns to it. The same number on
the real test images of the class is the yardstick (:func:`real_class_accuracy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data import ImageData
from .features import FeatureNet

__all__ = ["per_class_labels", "class_accuracy", "real_class_accuracy", "plot_guidance"]


def per_class_labels(classes: Sequence[str] | None, n: int) -> Tensor:
    """``n / K`` labels per class, class by class (``n`` must be a positive multiple of ``K``)."""
    if not classes:
        raise ValueError("guidance needs a class-conditional run (trained with --cond class)")
    k = len(classes)
    if n < k or n % k:
        raise ValueError(f"-n must be a multiple of the run's {k} classes (n / {k} images per class), got {n}")
    return torch.arange(k).repeat_interleave(n // k)


@torch.no_grad()
def _predict(net: FeatureNet, images: Tensor, device: torch.device | str, batch_size: int = 1000) -> Tensor:
    net = net.to(device).eval()
    out = [net(chunk.to(device).clamp(-1, 1)).argmax(1).cpu() for chunk in images.split(batch_size)]
    return torch.cat(out)


def class_accuracy(
    net: FeatureNet, images: Tensor, labels: Tensor, classes: int, device: torch.device | str = "cpu"
) -> list[float]:
    """Per class ``k``: the fraction of the images labelled ``k`` that ``net`` classifies as ``k``."""
    hits = _predict(net, images, device) == labels
    return [float(hits[labels == k].float().mean()) if (labels == k).any() else float("nan") for k in range(classes)]


def real_class_accuracy(net: FeatureNet, data: ImageData, device: torch.device | str = "cpu") -> list[float]:
    """:func:`class_accuracy` on labelled real images (the test split): what the samples are compared with."""
    if data.labels is None:
        raise ValueError("real accuracy needs a labelled data set")
    classes = len(data.class_names or ())
    return class_accuracy(net, data.batch(slice(None)), data.labels, classes, device)


def plot_guidance(
    results: Sequence[dict[str, Any]], real: Sequence[float] | None, path: str | Path, title: str
) -> Path:
    """Mean per-class accuracy (left axis, with the real images' as a dashed line) and FID (right) against w."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    labels = sorted({(r["sampler"], r["steps"]) for r in results})
    right = ax.twinx()
    for i, (sampler, steps) in enumerate(labels):
        mine = [r for r in results if (r["sampler"], r["steps"]) == (sampler, steps)]
        cells = sorted(mine, key=lambda r: r["guidance"])
        ws = [r["guidance"] for r in cells]
        colour = plt.get_cmap("tab10")(i % 10)
        if all("accuracy" in r for r in cells):
            ax.plot(ws, [r["accuracy"] for r in cells], marker="o", color=colour, label=f"{sampler} {steps}: accuracy")
        right.plot(ws, [r["fid"] for r in cells], marker="s", ls=":", color=colour, label=f"{sampler} {steps}: FID")
    if real:
        ax.axhline(sum(real) / len(real), color="k", ls="--", lw=1, label="real test images: accuracy")
    ax.set_xlabel("guidance weight w (0: unconditional, 1: conditional)")
    ax.set_ylabel("mean per-class accuracy")
    right.set_ylabel("FID (all classes)")
    n = ", ".join(sorted({str(r["n"]) for r in results}))
    ax.set_title(f"{title}\nn={n} images per cell, {', '.join(sorted({r['features'] for r in results}))}", fontsize=8)
    ax.grid(True, alpha=0.3)
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left", bbox_to_anchor=(1.15, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
