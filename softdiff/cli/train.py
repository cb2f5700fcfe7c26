"""``softdiff train``: train a Soft Diffusion model; every flag overrides one field of the run config."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import typer

from ..board import check_tensorboard
from ..distributed import is_main_process, relaunch
from ..registry import params_model
from ..schedule import read_levels
from ..score import OBJECTIVES
from ..seeding import MAX_SEED
from ..train import RunConfig, load_config_file, read_checkpoint, train
from ..train.checkpoint import find_checkpoint
from ..train.config import apply_overrides
from ..train.corruption import plugin_pythonpath
from ..train.interrupt import SIGNAL_EXIT
from .common import IMAGE_CHANNELS_HELP, IMAGE_SIZE_HELP, console, parse_set, user_errors

_DEFAULTS = RunConfig()


def _field_help(section: str, name: str) -> str:
    """A flag's help from the config field it sets: its description and the run's default, so it cannot drift.

    A field that names a registry entry has the registry's names in its description.
    """
    model = getattr(_DEFAULTS, section)
    field = type(model).model_fields[name]
    choices = getattr(field.annotation, "__args__", None)
    names = f"{' | '.join(map(str, choices))}: " if choices and all(isinstance(c, str) for c in choices) else ""
    return f"{names}{field.description} (default: {getattr(model, name)})"


def _setting_help(section: str, key: str, name: str) -> str:
    """A flag that sets one entry's setting: the ``Params`` field's description and default."""
    field = params_model(OBJECTIVES[name]).model_fields[key]
    return f"{name} only: {field.description} (default: {field.default})"


@user_errors
def train_command(
    corruption: str | None = typer.Option(
        None,
        "--corruption",
        "-c",
        help="Operator spec: noise, blur, mask, blur+mask, a plugin module.path:Class or file.py:Class, "
        f"blur+mymod:Class, ... (default: {_DEFAULTS.corruption.spec}); plugin arguments: "
        "--set corruption.params.NAME=VALUE",
    ),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        "-d",
        help="fashion-mnist, cifar10 (binary version), folder, synthetic (default: fashion-mnist)",
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Folder with the data set files (default: /usr/share/datasets/fashion-mnist for fashion-mnist)",
    ),
    image_size: int | None = typer.Option(None, "--image-size", help=IMAGE_SIZE_HELP),
    steps: int | None = typer.Option(None, "--steps", help=f"Optimizer steps (default: {_DEFAULTS.train.steps})"),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run folder (default: runs/DATASET-CORRUPTION)"),
    batch_size: int | None = typer.Option(
        None, "--batch-size", "-b", help=f"Images per step (default: {_DEFAULTS.train.batch_size})"
    ),
    lr: float | None = typer.Option(None, "--lr", help=f"AdamW peak learning rate (default: {_DEFAULTS.optim.lr})"),
    objective: str | None = typer.Option(None, "--objective", help=_field_help("objective", "name")),
    anchor: float | None = typer.Option(None, "--anchor", help=_setting_help("objective", "anchor", "soft")),
    weighting: str | None = typer.Option(None, "--weighting", help=_field_help("objective", "weighting")),
    parameterisation: str | None = typer.Option(
        None, "--parameterisation", help=_field_help("objective", "parameterisation")
    ),
    cond: str | None = typer.Option(None, "--cond", help=_field_help("cond", "kind")),
    cond_dropout: float | None = typer.Option(None, "--cond-dropout", help=_field_help("cond", "dropout")),
    channels: int | None = typer.Option(None, "--channels", help=IMAGE_CHANNELS_HELP),
    width: int | None = typer.Option(
        None, "--width", help=f"U-Net base channels (default: {_DEFAULTS.model.base_channels})"
    ),
    plugins: list[str] = typer.Option(
        [],
        "--plugin",
        help="Module (dotted, on PYTHONPATH) or file.py that registers objectives, weightings, t-samplers, "
        "parameterisations or networks; imported before the config is checked (repeatable).",
    ),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda (default: auto)"),
    seed: int | None = typer.Option(
        None,
        "--seed",
        min=0,
        max=MAX_SEED,
        help="Seed: data order, t and noise are functions of (seed, step) (default: 0)",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Run config file (.toml, .json, .yaml); flags override it."
    ),
    levels: Path | None = typer.Option(
        None, "--levels", help="Level table JSON from `softdiff schedule` (re-times the process)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its latest checkpoint (start it if it has none)."
    ),
    amp: bool | None = typer.Option(
        None, "--amp/--no-amp", help="bf16 autocast of the network (CUDA; slower on most CPUs)."
    ),
    compile_mode: str | None = typer.Option(None, "--compile", metavar="MODE", help=_field_help("train", "compile")),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="Channels-last memory format."
    ),
    hflip: bool | None = typer.Option(None, "--hflip/--no-hflip", help=_field_help("data", "hflip")),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice)"),
    set_fields: list[str] = typer.Option(
        [],
        "--set",
        help="Override any config field, e.g. --set optim.ema_decay=0.99 or --set corruption.params.factor=4 "
        "(repeatable).",
    ),
    tensorboard: bool | None = typer.Option(
        None,
        "--tensorboard/--no-tensorboard",
        help="Also write TensorBoard event files to RUN/tb: loss, lr, gradient norm, images/s, skipped steps, "
        "previews (needs pip install 'softdiff[tensorboard]').",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    nproc: int | None = typer.Option(
        None,
        "--nproc",
        min=1,
        help="Re-launch under torchrun with this many processes on this machine (global batch = batch x nproc).",
    ),
) -> None:
    """Train a denoiser with soft score matching; writes checkpoints and metrics.jsonl to --out.

    Runs unchanged under torchrun: each process trains on --batch-size images per step, so the
    global batch is batch-size x processes; rank 0 alone writes. See docs/distributed.md.
    SIGTERM or Ctrl-C stops after the current step with a checkpoint; --resume continues.
    """
    overrides: dict[str, Any] = {
        "corruption.spec": corruption,
        "data.dataset": dataset,
        "data.data_dir": str(data_dir) if data_dir is not None else None,
        "data.image_size": image_size,
        "train.steps": steps,
        "train.batch_size": batch_size,
        "optim.lr": lr,
        "objective.name": objective,
        "objective.params.anchor": anchor,
        "plugins": plugins or None,
        "objective.weighting": weighting,
        "objective.parameterisation": parameterisation,
        "data.channels": channels,
        "data.hflip": hflip,
        "model.base_channels": width,
        "cond.kind": cond,
        "cond.dropout": cond_dropout,
        "train.device": device,
        "train.seed": seed,
        "train.amp": amp,
        "train.compile": compile_mode,
        "train.channels_last": channels_last,
        "train.threads": threads,
        "train.tensorboard": tensorboard,
    }
    if channels is not None and channels not in (1, 3):
        raise ValueError(
            f"--channels is the images' channels, 1 (grey) or 3 (RGB), got {channels}; "
            "the U-Net's base channels are --width"
        )
    if tensorboard:
        check_tensorboard()  # before any file is read or torchrun starts
    settings = parse_set(set_fields)  # applied as given: `--set optim.grad_clip=null` sets None
    level_file = read_levels(levels) if levels is not None else None
    if level_file is not None:
        overrides["corruption.levels"] = list(level_file.times)
    stored = None
    if resume:
        if out is None:
            raise ValueError("--resume needs --out, the run folder to continue")
        found = find_checkpoint(out)
        stored = read_checkpoint(found).config if found is not None else None
    base = apply_overrides(stored.model_dump(mode="json") if stored else {}, load_config_file(config) if config else {})
    run_config = RunConfig.model_validate(apply_overrides(apply_overrides(base, overrides), settings, keep_none=True))
    if level_file is not None:
        level_file.check(run_config.corruption, dataset=run_config.data.dataset)
    run_config = run_config.load_plugins()  # import component plugins and check what they register
    run_config.corruption.plugins()  # import plugins and check their params before data loads or torchrun starts
    if nproc is not None:  # the workers import the plugins from where this process found them
        raise typer.Exit(relaunch("train", nproc, pythonpath=plugin_pythonpath(run_config.corruption)))
    out = out or Path("runs") / f"{run_config.data.dataset}-{run_config.corruption.label}"
    summary = train(run_config, out, resume=resume, progress=progress, console=console)
    if not is_main_process():
        return
    if summary.stopped_by is not None:
        console.print(
            f"stopped by {summary.stopped_by} at step {summary.step} of {run_config.train.steps}: wrote checkpoint "
            f"{summary.checkpoint}; continue with the same command and --resume",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(SIGNAL_EXIT + int(signal.Signals[summary.stopped_by]))
    if summary.checkpoint is None:  # resumed a run that had already reached --steps
        console.print(f"{out} is already at step {summary.step} (loss {summary.loss:.5f}); raise --steps to continue")
        return
    skipped = f"; {summary.skipped} steps skipped (non-finite loss or gradient)" if summary.skipped else ""
    console.print(
        f"step {summary.step}: loss {summary.loss:.5f} ({summary.images_per_s:.0f} images/s); "
        f"checkpoint {summary.checkpoint}, metrics {out / 'metrics.jsonl'}{skipped}"
    )
