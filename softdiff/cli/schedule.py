"""``softdiff schedule``: choose the corruption levels from the data (Fréchet-distance schedule)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.table import Table

from ..corrupt import check_structure
from ..data import load_dataset
from ..resources import check_memory, writable_file
from ..schedule import DataMoments, LevelSelection, check_level_count, level_distances, level_strengths, select_levels
from ..schedule.defaults import DEFAULT_CANDIDATES, DEFAULT_LEVELS, DEFAULT_SAMPLES, default_projection
from ..seeding import MAX_SEED
from ..train.config import load_config_file
from .common import IMAGE_CHANNELS_HELP, IMAGE_SIZE_HELP, console, corruption_config, user_errors


@user_errors
def schedule(
    corruption: Annotated[
        str | None,
        typer.Option("--corruption", "-c", help="Operator spec: blur, mask, blur+mask, mymod:Class (default: blur)"),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="Take the [corruption] table of a run config file (or of a run's config.json)."),
    ] = None,
    set_fields: Annotated[
        list[str] | None,
        typer.Option("--set", help="Plugin arguments and corruption settings: --set corruption.params.NAME=VALUE."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Data set whose training images set the levels (default: --config's or fashion-mnist).",
        ),
    ] = None,
    k: Annotated[
        int, typer.Option("-k", "--levels", help="Levels K to choose (first and last included).")
    ] = DEFAULT_LEVELS,
    candidates: Annotated[
        int, typer.Option("--candidates", help="Candidate levels N, evenly spaced.")
    ] = DEFAULT_CANDIDATES,
    samples: Annotated[
        int | None,
        typer.Option(min=2, help="Training images used to fit the level Gaussians (default: 2000, or all if fewer)."),
    ] = None,
    projection: Annotated[
        int | None,
        typer.Option(help="Keep r x r low DCT frequencies per channel (0: full; default: full up to 1024 values)."),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder holding the data set files.")] = None,
    image_size: Annotated[int | None, typer.Option("--image-size", min=4, help=IMAGE_SIZE_HELP)] = None,
    image_channels: Annotated[int | None, typer.Option("--channels", min=1, help=IMAGE_CHANNELS_HELP)] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed for the images picked.")] = 0,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (on a busy machine 1 can be faster).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Level table JSON; a PNG plot goes beside it.")] = Path(
        "levels.json"
    ),
) -> None:
    """Choose K corruption levels so consecutive levels are equally far apart (Fréchet distance)."""
    if threads is not None:
        torch.set_num_threads(threads)
    # the levels are what this command chooses: a config's own levels would re-time the candidates
    config = corruption_config(corruption, set_fields or [], config_file).model_copy(update={"levels": None})
    table = load_config_file(config_file).get("data") if config_file is not None else None
    table = table if isinstance(table, dict) else {}
    if dataset is None:  # a run config names its data set, and the levels are for that data
        dataset = str(table.get("dataset") or "fashion-mnist")
        data_dir = data_dir if data_dir is not None or not table.get("data_dir") else Path(table["data_dir"])
    image_size = image_size if image_size is not None else table.get("image_size")  # the run's shape, as it trains
    image_channels = image_channels if image_channels is not None else table.get("channels")
    check_level_count(k, candidates)
    check_memory(4 * 8 * candidates**2, f"the distance tables of {candidates:,} candidate levels")
    writable_file(out, "--out level table")
    writable_file(out.with_suffix(".png"), "level plot beside --out")
    data = load_dataset(dataset, "train", data_dir, image_size=image_size, channels=image_channels)
    if samples is not None and samples > len(data):
        raise ValueError(f"--samples {samples} is more than the {len(data)} training images of {dataset}")
    data = data.subset(samples if samples is not None else DEFAULT_SAMPLES, seed)
    moments = DataMoments.from_images(data.batch(slice(None)))
    shape = data.shape
    process = config.build(shape[1:])
    check_structure(process.operator, data.batch(slice(0, 3)))  # a plugin's wrong shape or NaN, before minutes
    for note in data.notes:  # after the checks, so that an error stays the only line
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    proj = default_projection(projection, shape)
    where = "full resolution" if proj is None else f"{proj}x{proj} low DCT frequencies per channel"
    console.print(
        f"{len(data)} {dataset} images {shape}, {config.spec!r}, {candidates} candidates -> {k} levels, {where}"
    )

    start = time.perf_counter()
    selection = select_levels(config, moments, candidates=candidates, k=k, projection=proj, progress=True)
    selection = dataclasses.replace(selection, data={"dataset": dataset, "shape": list(shape)})
    selection.save(out)
    seconds = time.perf_counter() - start

    uniform = torch.linspace(0, 1, k, dtype=torch.float64)
    default = level_distances(process, moments, uniform, projection=proj)
    plot = _plot(selection, level_strengths(process, uniform), default, out.with_suffix(".png"))
    _summary(selection, level_strengths(process, uniform), default)
    console.print(
        f"wrote {out} and {plot} in {seconds:.0f} s ({selection.pairs_computed} exact pair distances of "
        f"{candidates * (candidates - 1) // 2}); train with `softdiff train --levels {out}`"
    )


def _summary(selection: LevelSelection, default: dict[str, list[float]], default_dist: list[float]) -> None:
    table = Table(title="selected levels vs the default schedule (same t)")
    table.add_column("level")
    table.add_column("t")
    table.add_column("source time")
    names = [n for n in selection.strengths if n != "noise_s"] + ["noise_s"]
    for name in names:
        table.add_column(f"{name} (selected / default)")
    table.add_column("hop distance (selected / default)")
    k = selection.k
    for i in sorted({*range(0, k, max(1, k // 8)), k - 1}):
        hop = f"{selection.distances[i - 1]:.3g} / {default_dist[i - 1]:.3g}" if i > 0 else "-"  # hop into level i
        cells = [f"{selection.strengths[n][i]:.3g} / {default[n][i]:.3g}" for n in names]
        table.add_row(str(i), f"{i / (k - 1):.3f}", f"{selection.times[i]:.3f}", *cells, hop)
    console.print(table)


def _plot(selection: LevelSelection, default: dict[str, list[float]], default_dist: list[float], path: Path) -> Path:
    """Hop distances, source time and every named strength against t: selected vs default."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = selection.k
    t = [i / (k - 1) for i in range(k)]
    mid = [(a + b) / 2 for a, b in zip(t, t[1:], strict=False)]
    names = list(selection.strengths)
    fig, axes = plt.subplots(1, 2 + len(names), figsize=(3.2 * (2 + len(names)), 2.8), dpi=80)
    ax = axes[0]
    ax.plot(mid, selection.distances, "o-", ms=3, label="selected")
    ax.plot(mid, default_dist, "s--", ms=3, label="default")
    ax.axhline(selection.epsilon, color="grey", lw=0.8, ls=":", label="epsilon")
    ax.set(yscale="log", xlabel="t", title="distance between consecutive levels")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(t, selection.times, "o-", ms=3, label="selected")
    ax.plot(t, t, "--", label="default")
    ax.set(xlabel="t", title="source time u(t)")
    ax.legend(fontsize=7)
    for ax, name in zip(axes[2:], names, strict=True):
        chosen, base = list(selection.strengths[name]), list(default[name])
        ax.plot(t, chosen, "o-", ms=3, label="selected")
        ax.plot(t, base, "--", label="default")
        positive = min(chosen + base) > 0
        if positive and max(chosen + base) / min(chosen + base) > 30:
            ax.set_yscale("log")
        ax.set(xlabel="t", title=name)
        ax.legend(fontsize=7)
    data = selection.data or {}
    fitted = f", fitted on {selection.samples} images of {data.get('dataset', 'the data')}" if selection.samples else ""
    fig.suptitle(
        f"{selection.spec or selection.operator}: {k} levels from {len(selection.candidate_times)}{fitted}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
