"""FID/KID of one trained run over (sampler, time grid, steps) cells, resumable through a JSON file.

``softdiff eval`` and the benchmarks in ``bench/`` share this one loop: every cell samples
``n`` images with ``softdiff.samplers.generate`` (sample ``i`` depends only on ``(seed, i)``,
so all cells start from the same prior draws) and scores them with ``evaluate_samples``
against the run's test split. After each cell the results file is rewritten atomically, so
an interrupted sweep loses at most the cell in progress, and a cell already in the file for
the same checkpoint, step, ``n``, seed and features is not recomputed. A cell records its
time grid (``softdiff.samplers.time_grid`` name); cells written before grids existed have
none and were sampled on the uniform grid, which is how they are read.

On a class-conditional run, ``guidance`` adds a dimension: every cell is sampled at each
classifier-free guidance weight ``w`` (:class:`~softdiff.conditioning.Guided`), ``n / K``
images per class of the ``K`` classes, and also scores the classifier's accuracy on each
class's samples (:mod:`.guidance`). ``w = 0`` is the unconditional model: no label, the
shared prior (not each class's), so its FID is the run's unconditional FID and its
"accuracy" against the rows' labels is chance by construction (the baseline guidance is
measured against); it records ``unconditional: true``. Cells without guidance record none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..conditioning import Guided, guided_calls
from ..data import ImageData, load_dataset
from ..imageio import atomic_write_bytes
from ..samplers import generate, get, nfe, parse_grid
from ..samplers.grids import MAX_STEPS
from ..train.autogrids import run_grid
from .extractors import FeatureExtractor
from .features import FeatureNet
from .guidance import class_accuracy, per_class_labels
from .metrics import evaluate_samples
from .prdc import PRDC_KEYS

if TYPE_CHECKING:  # softdiff.train is only needed for the annotation
    from ..train import TrainedRun

__all__ = [
    "parse_samplers",
    "parse_grids",
    "parse_steps",
    "reference_data",
    "cell_identity",
    "load_results",
    "sweep",
    "plot_fid_vs_nfe",
]

RESULTS_VERSION = 1
# what makes two results comparable: a finished cell is reused only when all of these match
IDENTITY_KEYS = (
    "sampler", "grid", "steps", "checkpoint", "checkpoint_step", "n", "seed", "features", "guidance", "unconditional",
)  # fmt: skip
# what a stored result must hold to be shown again (a cell of the table)
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "sampler": str,
    "steps": int,
    "nfe": int,
    "fid": (int, float),
    "kid_mean": (int, float),
    "kid_std": (int, float),
    "seconds": (int, float),
}
DEFAULT_GRID = "uniform"  # what a stored cell without a "grid" field was sampled on


def parse_samplers(text: str) -> list[str]:
    """``"momentum,naive"`` -> registered sampler names (ValueError naming the unknown one)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"no sampler given in {text!r}; e.g. --sampler momentum,naive,euler")
    for name in names:
        get(name)
    return list(dict.fromkeys(names))


def parse_grids(text: str) -> list[str]:
    """``"uniform,edm:levels"`` -> grid specs, checked for form (whether a run supports one is checked when used).

    A piece ``key=value`` with no ``:`` continues the settings of the grid before it
    (``mine:a=1,b=2,uniform`` is two grids): grid names hold no ``=``.
    """
    grids: list[str] = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        if "=" in part and ":" not in part and grids and "=" in grids[-1]:
            grids[-1] += "," + part
        else:
            grids.append(part)
    if not grids:
        raise ValueError(f"no grid given in {text!r}; e.g. --grid uniform,edm")
    for grid in grids:
        parse_grid(grid)
    return list(dict.fromkeys(grids))


def parse_steps(text: str) -> list[int]:
    """``"5,10,20"`` -> positive step counts (ValueError on anything else)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise ValueError(f"no step count given in {text!r}; e.g. --steps 5,10,20,50")
    steps = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"bad step list {text!r}: {part!r} is not an integer; e.g. --steps 5,10,20,50") from None
        if value < 1:
            raise ValueError(f"bad step list {text!r}: step counts must be >= 1, got {value}")
        if value > MAX_STEPS:
            raise ValueError(f"bad step list {text!r}: step counts must be at most {MAX_STEPS:,}, got {value:,}")
        steps.append(value)
    return list(dict.fromkeys(steps))


def reference_data(run: TrainedRun) -> ImageData:
    """The test split of the data set the run was trained on (the FID reference)."""
    data = run.config.data
    return load_dataset(data.dataset, "test", data.data_dir, image_size=data.image_size, channels=data.channels)


def cell_identity(result: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(result.get(key, DEFAULT_GRID if key == "grid" else None) for key in IDENTITY_KEYS)  # no guidance: None


def load_results(path: str | Path) -> list[dict[str, Any]]:
    """The results stored in a sweep file ([] when there is none); ValueError if it is unreadable."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        stored = json.loads(path.read_text())
        results = stored["results"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        message = f"{path} is not a softdiff eval results file ({err}); move it away or pick another --out"
        raise ValueError(message) from None
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ValueError(f"{path} is not a softdiff eval results file ('results' must be a list of objects)")
    for i, result in enumerate(results):
        for key, kind in REQUIRED_KEYS.items():
            if not isinstance(result.get(key), kind) or isinstance(result.get(key), bool):
                raise ValueError(
                    f"{path} is not a softdiff eval results file: result {i} has no valid {key!r}; "
                    "move it away or pick another --out"
                )
    return results


def _write(path: Path, results: list[dict[str, Any]]) -> None:
    text = json.dumps({"version": RESULTS_VERSION, "results": results}, indent=2) + "\n"
    atomic_write_bytes(path, text.encode())


def sweep(
    run: TrainedRun,
    samplers: Sequence[str],
    steps: Sequence[int],
    *,
    n: int,
    extractor: FeatureExtractor,
    real: ImageData | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    results_path: str | Path | None = None,
    progress: bool = False,
    on_result: Callable[[dict[str, Any], bool], None] | None = None,
    grids: Sequence[str] = (DEFAULT_GRID,),
    guidance: Sequence[float] | None = None,
    classifier: FeatureNet | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every (sampler, time grid, steps) cell; return one result per cell, in that order.

    With ``results_path``, finished cells found there are reused (``on_result(result, True)``)
    and each new one is added to the file as soon as it is done (``on_result(result, False)``).
    A result holds the cell (sampler, grid, steps), its NFE, FID, KID, the features, ``n``, the seed, the
    checkpoint and its step, and the seconds spent sampling and scoring.

    ``guidance`` (a class-conditional run only): the weights to sample each cell at, class by
    class; ``classifier`` then scores each class's samples (``class_accuracy``, ``accuracy``).
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 images for FID/KID, got {n}")
    real = real if real is not None else reference_data(run)
    path = Path(results_path) if results_path is not None else None
    stored = load_results(path) if path is not None else []
    done = {cell_identity(r): r for r in stored}
    common = {
        "checkpoint": str(Path(run.path).resolve()),
        "checkpoint_step": run.step,
        "n": n,
        "seed": seed,
        "features": extractor.description,
    }
    labels = per_class_labels(run.classes, n) if guidance is not None else None
    weights: Sequence[float | None] = guidance if guidance is not None else (None,)
    results = []
    for sampler, grid, k, w in ((s, g, k, w) for s in samplers for g in grids for k in steps for w in weights):
        cell = {"sampler": sampler, "grid": grid, "steps": k, "nfe": nfe(sampler, k), **common}
        if w is not None:
            cell.update(guidance=float(w), nfe=nfe(sampler, k) * guided_calls(w))
        if w == 0:  # the unconditional model: no label and the shared prior (cells before this lack the key)
            cell["unconditional"] = True
        previous = done.get(cell_identity(cell))
        if previous is not None:
            previous = {"grid": DEFAULT_GRID, **previous}  # cells from before grids: uniform
            results.append(previous)
            if on_result is not None:
                on_result(previous, True)
            continue
        start = time.perf_counter()
        times = run_grid(run, grid, sampler, k) if grid == "auto" else grid  # auto: optimised once, cached
        denoiser, extra = run.denoiser, {}
        if w:  # w = 0 samples the unconditional model from the shared prior, as an unlabelled user would
            denoiser, extra = Guided(run.denoiser, w), {"cond": labels}
        images = generate(
            denoiser, run.process, run.prior, n, sampler=sampler, steps=k, grid=times, seed=seed,
            batch_size=batch_size, device=device, progress=progress, **extra,
        )  # fmt: skip
        sampled = time.perf_counter()
        scores = evaluate_samples(
            images, real, features=extractor, cache_dir=cache_dir, seed=seed, device=device, progress=progress
        )
        finished = time.perf_counter()
        result = {
            **cell,
            "fid": scores["fid"],
            "kid_mean": scores["kid_mean"],
            "kid_std": scores["kid_std"],
            "kid_subsets": scores["kid_subsets"],
            "kid_subset_size": scores["kid_subset_size"],
            **{key: scores[key] for key in PRDC_KEYS if key in scores},
            "n_real": scores["n_real"],
            "real": scores["real"],
            "corruption": run.config.corruption.spec,
            "sample_seconds": sampled - start,
            "seconds": finished - start,
        }
        if w is not None and classifier is not None and labels is not None:
            per_class = class_accuracy(classifier, images, labels, len(run.classes or ()), device=device)
            result.update(class_accuracy=per_class, accuracy=sum(per_class) / len(per_class))
        results.append(result)
        if path is not None:
            stored = [r for r in stored if cell_identity(r) != cell_identity(result)] + [result]
            _write(path, stored)
        if on_result is not None:
            on_result(result, False)
    return results


def plot_fid_vs_nfe(
    curves: dict[str, Sequence[dict[str, Any]]], path: str | Path, *, title: str = "FID against NFE"
) -> Path:
    """One line per label through its results' (NFE, FID) points, both axes log-scaled, PNG.

    A log FID axis keeps a curve at 600 from flattening the ones near 20. Under ``title``
    the plot states what its numbers cost, read from the results: the images per cell
    (``n``), the checkpoint step of the model(s) and the features.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator

    from ..plotting import log_ticks

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7.2, 3.8), dpi=100)
    colours = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")  # no two curves share a colour up to 20
    for i, (label, results) in enumerate(curves.items()):
        points = sorted((r["nfe"], r["fid"]) for r in results)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label, color=colours(i % 20))
    ax.set_xscale("log")
    ax.set_yscale("log")
    nfes = sorted({r["nfe"] for results in curves.values() for r in results})
    ax.set_xticks(nfes, [str(v) for v in nfes])
    ax.xaxis.set_minor_locator(LogLocator(subs=()))
    log_ticks(ax, "y")
    ax.set_xlabel("network evaluations (NFE)")
    ax.set_ylabel("FID (log axis)")
    cells = [r for results in curves.values() for r in results]
    ns = ", ".join(str(v) for v in sorted({r.get("n") for r in cells}, key=str))
    steps = ", ".join(str(v) for v in sorted({r.get("checkpoint_step") for r in cells}, key=str))
    features = ", ".join(sorted({r["features"] for r in cells}))
    ax.set_title(f"{title}\nn={ns} images per cell, checkpoint step {steps}, {features}", fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, never over them
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
