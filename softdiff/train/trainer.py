"""The training loop: AdamW + warm-up, gradient clipping, EMA, optional bf16/compile, exact resume.

Reproducibility and exact resume come from one rule: everything random in step ``k``
(the data batch, ``t``, the noise, dropout) is a function of ``(seed, k)`` alone, drawn
from generators seeded afresh each step. A run resumed from the checkpoint at step ``k``
therefore sees exactly the batches and noise an uninterrupted run would have seen.

Work is never lost for long: checkpoints come every ``ckpt_every`` steps and every
``ckpt_minutes``, SIGTERM/SIGINT end the run after the current step with a checkpoint
(:mod:`.interrupt`), and a step whose loss or gradient is not finite changes nothing
(:mod:`.guard`); too many in a row stop the run with the last good checkpoint intact.

The parts, in the order a run meets them: :func:`_open_run` (resume or start),
:func:`_load_data`, :class:`_Model` (network, EMA, optimizer, prior, statistics),
:class:`_Step` (one optimizer step), :class:`_Checkpointer` and :func:`_loop` (logging,
checkpoints, signals). Seeds come from :mod:`softdiff.seeding`, batches from
:mod:`.batches`, the metrics file from :mod:`.metrics`, preview grids and TensorBoard
from :mod:`.watch`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text
from torch import Tensor, nn

from ..board import check_tensorboard
from ..conditioning import NULL_CLASS
from ..corrupt import CorruptionProcess, LinearCorruption, check_operator
from ..corrupt.times import DeferredTimeChecks
from ..data import ImageData, load_dataset
from ..distributed import DistContext, distributed, resolve_device
from ..imageio import atomic_write_bytes
from ..progress import LoggedProgress
from ..resources import check_memory, describe_os_error, writable_dir
from ..samplers.class_prior import ClassPrior, fit_class_priors
from ..samplers.prior import Prior, fit_prior, prior_from_state_dict
from ..schedule.defaults import DEFAULT_SAMPLES, selects_levels_by_default, training_levels
from ..score import DataStatistics, Denoiser
from ..score.objectives import Objective
from ..seeding import derive_seed, rank_seed
from ..tensors import upload
from .batches import BatchOrder, ShardedBatches, check_world, global_draws
from .checkpoint import (
    CHECKPOINTS,
    Checkpoint,
    clean_temporaries,
    find_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    step_folder,
)
from .compilation import compiled, mark_step
from .config import RunConfig
from .consistency import check_optimizer_state, check_weights
from .corruption import Corruption, record_corruption, run_process
from .ema import EMA
from .guard import NonFiniteGuard, gradient_norm
from .interrupt import StepClock, StopSignals
from .loading import build_net
from .lock import run_lock
from .lr import LearningRate
from .memory import saved_activation_bytes
from .metrics import METRICS, LogWindow, start_metrics
from .objective import objective_for, precond_state, statistics_for, t_sampler_for
from .watch import Watch

__all__ = ["train", "TrainSummary", "EMA", "METRICS"]


class _Speed(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} steps/s" if task.speed else "-- steps/s", style="cyan")


@dataclass
class TrainSummary:
    run_dir: Path
    step: int
    loss: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    images_per_s: float = 0.0
    checkpoint: Path | None = None
    net: nn.Module | None = None  # the trained network (raw weights)
    ema_net: nn.Module | None = None  # its EMA copy (what to sample with)
    stopped_by: str | None = None  # "SIGTERM" / "SIGINT" when a signal ended the run early (a checkpoint was written)
    fresh_start: bool = False  # True when resume=True found no checkpoint and the run started from step 0
    skipped: int = 0  # steps whose update was skipped because the loss or gradient was not finite


def train(
    config: RunConfig | None,
    out: str | Path,
    *,
    resume: bool = False,
    data: ImageData | None = None,
    net: nn.Module | None = None,
    progress: bool = True,
    console: Console | None = None,
    stop_at: int | None = None,
    corruption: Corruption | None = None,
) -> TrainSummary:
    """Train (or resume) the run in folder ``out``; returns the final step and loss.

    Under ``torchrun`` every process calls this: it joins the process group, trains a
    DDP-wrapped copy of the network on its share of a global batch of ``batch_size x
    WORLD_SIZE`` images, and only rank 0 writes ``out`` or shows progress (see
    :mod:`softdiff.train.batches` and docs/distributed.md). Resuming needs the same
    number of processes.

    With ``resume=True`` the checkpoint's config is used when ``config`` is None; a given
    config may differ from it only in the ``train`` section (steps, device, threads, ...).

    With ``resume=True`` and no checkpoint in ``out`` yet (or no ``out`` at all), the run
    starts from step 0 (``summary.fresh_start``), so one command both starts and continues a
    run; a checkpoint whose config conflicts with ``config`` is still refused.

    SIGTERM or SIGINT during the loop ends it after the current step with a checkpoint
    (``summary.stopped_by``); a non-finite loss or gradient skips the step, and
    ``train.max_bad_steps`` of them in a row raise a ``ValueError`` naming the last good
    checkpoint.

    ``data`` and ``net`` replace the configured data set and U-Net (your own module taking
    ``net(x_t, t)``). ``stop_at`` ends the loop after that many steps without a final
    checkpoint, exactly like a crash (used to test resume).

    ``corruption`` (a ``LinearCorruption``, with the config's noise and levels, or a whole
    ``CorruptionProcess``) replaces the config's operator. ``config.json`` names it as
    ``module:Class`` with its parameters when its class is importable and keeps them as
    public attributes; otherwise a warning says that only Python can load the run
    (``load_run(path, corruption=...)``). See :mod:`softdiff.train.corruption`.
    """
    if corruption is not None and config is not None:
        config = record_corruption(config, corruption)  # before a resume compares it with the checkpoint's
    with distributed(resolve_device(_device_name(config, out, resume))) as ctx:
        return _train(ctx, config, out, resume, data, net, progress, console, stop_at, corruption)


def _train(
    ctx: DistContext,
    config: RunConfig | None,
    out: str | Path,
    resume: bool,
    data: ImageData | None,
    net: nn.Module | None,
    progress: bool,
    console: Console | None,
    stop_at: int | None,
    corruption: Corruption | None = None,
) -> TrainSummary:
    run_dir = Path(out)
    with _locked(ctx, run_dir):
        return _train_locked(ctx, config, run_dir, resume, data, net, progress, console, stop_at, corruption)


@contextlib.contextmanager
def _locked(ctx: DistContext, run_dir: Path) -> Iterator[None]:
    """Rank 0 holds the run folder's lock (:mod:`.lock`) for the whole run; a refusal stops every rank."""
    with contextlib.ExitStack() as stack:
        refused = None
        if ctx.is_main:
            try:
                writable_dir(run_dir, "run folder")
                stack.enter_context(run_lock(run_dir))
            except ValueError as err:
                refused = str(err)
        ctx.fail_together(refused)
        yield


def _train_locked(
    ctx: DistContext,
    config: RunConfig | None,
    run_dir: Path,
    resume: bool,
    data: ImageData | None,
    net: nn.Module | None,
    progress: bool,
    console: Console | None,
    stop_at: int | None,
    corruption: Corruption | None,
) -> TrainSummary:
    config, ckpt, fresh_start = _open_run(ctx, config, run_dir, resume, console)
    config = config.load_plugins()  # the modules the run names register its components before any is built
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    config, data, process = _load_data(
        config, data, corruption, ckpt, console if ctx.is_main else False, ctx.device if net is None else None
    )
    model = _Model.build(ctx, config, process, data, net, ckpt)
    logged: list[tuple[int, float]] = []
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / "config.json", config.model_dump_json(indent=2).encode())
        logged = start_metrics(run_dir / METRICS, model.start if ckpt is not None else None)
    step = _Step.build(ctx, config, process, data, model, ckpt)
    window = LogWindow(ctx.device, ckpt.trainer.get("window") if ckpt is not None else None)
    writer = _Checkpointer(ctx, run_dir, config, model, step.precond, window, ckpt.path if ckpt is not None else None)
    resume_step = model.start if ckpt is not None else None
    watch = Watch.open(ctx, config, run_dir, model.ema.net, process, model.prior, model.stats, resume_step)

    loss = logged[-1][1] if logged else math.nan
    summary = TrainSummary(run_dir, model.start, loss, logged, net=model.net, ema_net=model.ema.net)
    summary.fresh_start = fresh_start
    end = config.train.steps if stop_at is None else min(config.train.steps, stop_at)
    bar = _progress_bar(console, progress, ctx)
    try:
        saved, images, elapsed = _loop(ctx, config, step, writer, summary, end, bar, watch)
    finally:
        watch.close()
    summary.images_per_s = images / elapsed if elapsed > 0 else 0.0
    if summary.stopped_by is None and (stop_at is None or summary.step == config.train.steps):
        if summary.step > saved or ckpt is None:
            summary.checkpoint = writer.save(summary.step)
    return summary


def _open_run(
    ctx: DistContext, config: RunConfig | None, run_dir: Path, resume: bool, console: Console | None
) -> tuple[RunConfig, Checkpoint | None, bool]:
    """Resume or start: ``(config, checkpoint or None, fresh_start)``; fails before any data is loaded."""
    ckpt = None
    fresh_start = False
    if resume:
        found = find_checkpoint(run_dir)
        ctx.check_same(found is not None, "whether there is a checkpoint to resume from")
        if found is not None:
            ckpt = read_checkpoint(found)
            config = _resume_config(ckpt.config, config)
            check_world(ckpt.trainer.get("world_size"), ctx)
            ctx.check_same(ckpt.step, "the checkpoint step to resume from")
        elif config is None:
            raise ValueError(f"cannot resume: {run_dir} has no checkpoint yet, and there is no config to start it with")
        else:
            fresh_start = True
    elif config is None:
        raise ValueError("train() needs a config unless it resumes a run")
    elif find_checkpoint(run_dir) is not None:
        raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if ctx.is_main:  # fail before minutes of data loading, and clear what a killed run left behind
        if config.train.tensorboard:
            check_tensorboard()
        writable_dir(run_dir, "run folder")
        if (run_dir / CHECKPOINTS).exists():
            writable_dir(run_dir / CHECKPOINTS, "checkpoint folder")
        clean_temporaries(run_dir)
        if fresh_start:
            (console or Console()).print(
                f"nothing to resume in {run_dir} (no checkpoint yet): starting the run from step 0",
                highlight=False,
                soft_wrap=True,
            )
    return config, ckpt, fresh_start


def _load_data(
    config: RunConfig,
    data: ImageData | None,
    corruption: Corruption | None,
    ckpt: Checkpoint | None,
    console: Console | None | bool = None,
    net_device: torch.device | None = None,
) -> tuple[RunConfig, ImageData, CorruptionProcess]:
    """The training images (given or configured), the config resolved for their shape, and the process.

    ``corruption`` (an operator or process object from ``train()``) replaces the config's operator;
    a resumed run's operator is checked against the one its checkpoint recorded. A fresh run
    of a blur-like operator with no levels selects them first (``train.select_levels``);
    ``console=False`` (ranks other than 0) selects them silently. ``net_device``: where the
    configured network will be built, so a network that cannot fit fails before the selection.
    """
    if data is None:
        data = load_dataset(
            config.data.dataset,
            "train",
            config.data.data_dir,
            image_size=config.data.image_size,
            channels=config.data.channels,
        )
    config = _with_classes(config, data)
    channels, height, width = data.shape
    if height != width:
        raise ValueError(f"training needs square images, the data set has {height}x{width}")
    if config.data.image_size is not None and config.data.image_size != height:
        raise ValueError(f"data.image_size is {config.data.image_size} but the data set has {height}x{width} images")
    config = config.resolved(channels, height)
    if console is not False:  # once the config is known to fit the data: an error stays the only line
        for note in data.notes:
            (console or Console()).print(f"note: {note}", highlight=False, soft_wrap=True)
    if ckpt is None and corruption is None and config.train.select_levels and config.corruption.levels is None:
        if net_device is not None:
            _check_net_memory(config, net_device)  # seconds of selection before a refusal would be wasted
        config = _select_levels(config, data, console)
    config, process = run_process(config, (height, width), corruption, ckpt.config if ckpt else None)
    if config.train.check_operator:
        _check_laws(process.operator, (2, channels, height, width))
    return config, data, process


def _with_classes(config: RunConfig, data: ImageData) -> RunConfig:
    """A class-conditional run's config with the data's class names (a resumed run's must be the same)."""
    if config.cond.kind != "class":
        return config
    names = data.class_names
    if names is None:
        raise ValueError(
            f"--cond class needs a data set with labels, and {config.data.dataset!r} "
            f"({config.data.data_dir or 'default location'}) has none (a folder is labelled by its sub-folders)"
        )
    if config.cond.classes is not None and list(config.cond.classes) != list(names):
        raise ValueError(f"the run's classes {config.cond.classes} are not the data set's {list(names)}")
    return config.model_copy(update={"cond": config.cond.model_copy(update={"classes": list(names)})})


def _select_levels(config: RunConfig, data: ImageData, console: Console | None | bool) -> RunConfig:
    """``config`` with the levels ``softdiff schedule`` would choose, when its operator selects them by default."""
    shape = data.shape
    if not selects_levels_by_default(config.corruption.build(shape[1:]), shape):
        return config
    started = time.perf_counter()
    selection = training_levels(config.corruption, data)
    if console is not False:
        (console or Console()).print(
            f"selected {len(selection.times)} corruption levels on {min(len(data), DEFAULT_SAMPLES)} training images "
            f"in {time.perf_counter() - started:.0f} s (the paper's schedule; --set train.select_levels=false keeps "
            "the operator's own)",
            highlight=False,
            soft_wrap=True,
        )
    levels = list(selection.times)
    return config.model_copy(update={"corruption": config.corruption.model_copy(update={"levels": levels})})


def _check_laws(op: LinearCorruption, shape: tuple[int, int, int, int]) -> None:
    """The operator laws in float32, the dtype training uses: a broken plugin fails here in one line, not later."""
    skip = "; fix the operator, or skip this check with --set train.check_operator=false"
    try:
        check_operator(op, shape, dtype=torch.float32, identity_tol=None)
    except ValueError as err:
        raise ValueError(f"{str(err).splitlines()[0]}{skip}") from None
    except (RuntimeError, TypeError, IndexError) as err:  # the operator's own code failed on float32 images
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        where = f"{op!r} fails on float32 images of shape {shape}"
        raise ValueError(f"{where}: {type(err).__name__}: {first}{skip}") from None


@dataclass
class _Model:
    """The trained state: network, EMA, optimizer, prior and preconditioning statistics, at step ``start``."""

    net: nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    prior: Prior
    stats: DataStatistics | None
    x_prior: Tensor  # the images the prior (and the loss scale) are fitted on
    start: int
    class_prior: ClassPrior | None = None  # class-conditional runs: a prior per class beside the shared one

    @classmethod
    def build(
        cls,
        ctx: DistContext,
        config: RunConfig,
        process: CorruptionProcess,
        data: ImageData,
        net: nn.Module | None,
        ckpt: Checkpoint | None,
    ) -> _Model:
        """Fresh (seeded by ``(seed, "init")``) or restored from ``ckpt``, on the run's device."""
        tc, oc = config.train, config.optim
        if net is None:
            _check_net_memory(config, ctx.device)
            torch.manual_seed(derive_seed(tc.seed, "init"))
            net = build_net(config)
        net = net.to(ctx.device)
        if tc.channels_last:
            net = net.to(memory_format=torch.channels_last)
        ema = EMA(net, oc.ema_halflife, oc.ema_rampup, oc.ema_decay)
        # fused: the step takes the non-finite guard's flag on the device (found_inf) and skips itself
        optimizer = torch.optim.AdamW(
            net.parameters(), lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay, fused=True
        )
        prior_images = min(config.data.prior_images, len(data))
        check_memory(3 * 8 * prior_images * math.prod(data.shape), f"fitting the prior on {prior_images} images")
        x_prior = data.subset(config.data.prior_images, seed=derive_seed(tc.seed, "prior")).batch(slice(None))
        stats = statistics_for(config, process, x_prior, ckpt.precond if ckpt is not None else None)
        if ckpt is None:
            dc = config.data
            prior = fit_prior(process, x_prior, dc.prior_rank, dc.prior_mixtures, derive_seed(tc.seed, "prior-fit"))
            return cls(net, ema, optimizer, prior, stats, x_prior, 0, _class_prior(config, process, data, prior))
        _load_training_state(ckpt, net, ema, optimizer)
        prior = prior_from_state_dict(ckpt.prior)
        class_prior = ClassPrior.from_state_dict(ckpt.class_prior, prior) if ckpt.class_prior is not None else None
        return cls(net, ema, optimizer, prior, stats, x_prior, ckpt.step, class_prior)


def _class_prior(config: RunConfig, process: CorruptionProcess, data: ImageData, shared: Prior) -> ClassPrior | None:
    """A class-conditional run's prior per class (its own images, the shared prior's settings); None otherwise."""
    if config.classes is None or data.labels is None:
        return None
    dc = config.data
    priors = fit_class_priors(
        process, data.images, data.labels, len(config.classes), rank=dc.prior_rank, mixtures=dc.prior_mixtures,
        per_class=dc.prior_images, seed=config.train.seed,
    )  # fmt: skip
    return ClassPrior(priors, shared)


@dataclass
class _Step:
    """One optimizer step: the denoiser, objective, learning rate and data of every step."""

    ctx: DistContext
    config: RunConfig
    model: _Model
    params: list[nn.Parameter]
    denoiser: Denoiser
    objective: Objective
    precond: dict[str, Tensor] | None  # what a checkpoint stores in precond.safetensors
    lr_at: LearningRate
    batches: ShardedBatches
    # the operators' [0, 1] checks of this step's times, read by the host with the metrics, not at each call
    time_checks: DeferredTimeChecks = field(default_factory=DeferredTimeChecks)

    @classmethod
    def build(
        cls,
        ctx: DistContext,
        config: RunConfig,
        process: CorruptionProcess,
        data: ImageData,
        model: _Model,
        ckpt: Checkpoint | None,
    ) -> _Step:
        tc, oc = config.train, config.optim
        parallel_net = ctx.wrap(model.net)  # DDP when there are several processes; the EMA follows the bare net
        forward_net = compiled(parallel_net, tc.compile)
        autocast = torch.bfloat16 if tc.amp else None
        denoiser = Denoiser(forward_net, process, config.objective.parameterisation, autocast, model.stats)
        objective, scale = objective_for(
            config.objective, process, t_sampler_for(config, process), denoiser, model.x_prior,
            derive_seed(tc.seed, "loss-scale"), ckpt.precond if ckpt is not None else None,
        )  # fmt: skip
        lr_at = LearningRate(oc.lr, oc.warmup, tc.steps, oc.lr_decay, oc.lr_final)
        order = BatchOrder(len(data), tc.batch_size * ctx.world, tc.seed)
        batches = ShardedBatches(data, order, ctx, tc.channels_last, hflip=config.data.hflip)
        precond = precond_state(model.stats, scale)
        return cls(ctx, config, model, list(model.net.parameters()), denoiser, objective, precond, lr_at, batches)

    def __call__(self, step: int, guard: NonFiniteGuard, window: LogWindow) -> tuple[float, Tensor, Tensor, int]:
        """Train on step ``step``'s batch: ``(lr, gradient norm, bad-step flag, images on this rank)``.

        Nothing here reads a device value on the host, so a GPU never waits for the Python side.
        """
        with self.time_checks.active():
            return self._train(step, guard, window)

    def settle_time_checks(self, step: int) -> None:
        """Raise if a step up to ``step`` passed times outside [0, 1] to an operator (a t-sampler's bug)."""
        law = self.config.objective.t_sampler
        self.time_checks.settle(f"a training step up to {step} (objective.t_sampler {law!r})")

    def _train(self, step: int, guard: NonFiniteGuard, window: LogWindow) -> tuple[float, Tensor, Tensor, int]:
        ctx, tc, model = self.ctx, self.config.train, self.model
        mark_step(tc.compile)
        g = torch.Generator(device=ctx.device).manual_seed(derive_seed(tc.seed, "step", step))
        torch.manual_seed(rank_seed(derive_seed(tc.seed, "global", step), ctx.rank))  # dropout, other global draws
        x0 = self.batches(step)
        lr = self.lr_at(step)
        for group in model.optimizer.param_groups:
            group["lr"] = lr
        t, noise = global_draws(self.objective.t_sampler, x0, g, ctx)
        cond = self._labels(step)
        loss = self.objective(self.denoiser, x0, t=t, noise=noise, cond=cond).mean()
        model.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = gradient_norm(self.params, self.config.optim.grad_clip)
        bad = guard.flag(loss, grad_norm)
        model.optimizer.found_inf = bad  # type: ignore[attr-defined]  # fused AdamW skips the update where bad = 1
        model.optimizer.step()
        model.ema.update(model.net, step + 1, tc.batch_size * ctx.world, skip=bad)
        window.add(loss, bad)
        return lr, grad_norm, bad, x0.shape[0]

    def _labels(self, step: int) -> Tensor | None:
        """This rank's labels of step ``step`` (None when unconditional), each dropped to NULL_CLASS with the
        configured probability; the drops come from their own generator, so t and noise are those of an
        unconditional run."""
        cc = self.config.cond
        if cc.kind != "class":
            return None
        g = torch.Generator().manual_seed(derive_seed(self.config.train.seed, "cond-dropout", step))
        labels, drop = self.batches.labels(step, g, cc.dropout)
        return upload(torch.where(drop, torch.full_like(labels, NULL_CLASS), labels), self.ctx.device)


class _Checkpointer:
    """Writes checkpoints (rank 0; the others wait at a barrier) and remembers the last good one."""

    def __init__(
        self,
        ctx: DistContext,
        run_dir: Path,
        config: RunConfig,
        model: _Model,
        precond: dict[str, Tensor] | None,
        window: LogWindow,
        last_good: Path | None,
    ) -> None:
        self.ctx, self.run_dir, self.config, self.model = ctx, run_dir, config, model
        self.precond, self.window, self.last_good = precond, window, last_good

    def save(self, step: int) -> Path:
        """Rank 0 writes (every rank holds the same weights); the barrier keeps the others from racing ahead."""
        ctx, model, tc = self.ctx, self.model, self.config.train
        # the partial logging window: the next metrics line is exact after resume
        trainer = {"step": step, "world_size": ctx.world, "window": self.window.state(ctx)}
        ctx.barrier()
        if ctx.is_main:
            try:
                parts = {"net": model.net.state_dict(), "ema": model.ema.net.state_dict(), "trainer": trainer}
                parts |= {"optimizer": model.optimizer.state_dict(), "rng": {"torch": torch.get_rng_state()}}
                parts |= {"prior": model.prior.state_dict(), "precond": self.precond}
                if model.class_prior is not None:
                    parts["class_prior"] = model.class_prior.state_dict()
                path = save_checkpoint(self.run_dir, step, self.config, parts, keep=tc.keep)
            except OSError as err:
                kept = (
                    f"the last complete checkpoint is {self.last_good}" if self.last_good else "no checkpoint was kept"
                )
                message = describe_os_error(err, f"could not write the checkpoint of step {step}")
                raise OSError(f"{message}; {kept}") from None
        ctx.barrier()
        self.last_good = path if ctx.is_main else step_folder(self.run_dir, step)
        return self.last_good

    def diverged(self, guard: NonFiniteGuard) -> ValueError:
        where = f"the last good checkpoint is {self.last_good}" if self.last_good else "no checkpoint was written"
        return ValueError(
            f"the loss or gradient was not finite for {guard.streak} steps in a row (steps {guard.first_bad} to "
            f"{guard.last_step}); stopped, {where}; lower --lr or keep gradient clipping on (optim.grad_clip)"
        )


def _progress_bar(console: Console | None, progress: bool, ctx: DistContext) -> LoggedProgress:
    return LoggedProgress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        _Speed(),
        TimeRemainingColumn(),
        console=console,
        disable=not (progress and ctx.is_main),
    )


def _loop(
    ctx: DistContext,
    config: RunConfig,
    train_step: _Step,
    writer: _Checkpointer,
    summary: TrainSummary,
    end: int,
    bar: LoggedProgress,
    watch: Watch,
) -> tuple[int, int, float]:
    """Steps ``summary.step .. end`` with logging, checkpoints, signals, previews and the non-finite guard.

    Returns ``(step of the last checkpoint written, images trained on, seconds)``.
    """
    tc, net = config.train, train_step.model.net
    guard = NonFiniteGuard(tc.max_bad_steps, ctx)
    net.train()
    images, saved, started = 0, summary.step, time.perf_counter()
    metrics_path = writer.run_dir / METRICS
    with bar, StopSignals() as signals, metrics_path.open("a") if ctx.is_main else open(os.devnull, "w") as metrics:
        clock = StepClock(signals, tc.ckpt_minutes, ctx)
        task = bar.add_task("train", total=tc.steps, completed=summary.step, loss="--")
        for step in range(summary.step, end):
            lr, grad_norm, bad, batch = train_step(step, guard, writer.window)
            images += batch * ctx.world
            done = step + 1
            if guard.record(done, bad):
                raise writer.diverged(guard)
            if done % tc.log_every == 0 or done == end:
                train_step.settle_time_checks(done)
                mean_loss = _log_line(ctx, config, writer.window, summary, metrics, done, lr, grad_norm, started, watch)
                if mean_loss is not None:
                    bar.update(task, loss=f"{mean_loss:.4f}")
            bar.update(task, completed=done)
            summary.step = done
            stop, due = clock.poll()  # stop: the name of the signal some rank received
            if (stop or due or done % tc.ckpt_every == 0) and done != tc.steps:
                if guard.flush():
                    raise writer.diverged(guard)
                train_step.settle_time_checks(done)
                if stop or guard.streak == 0:  # during a run of bad steps the last good checkpoint stays the latest
                    summary.checkpoint = writer.save(done)
                    saved = done
                    clock.checkpointed()
            if stop and done != tc.steps:
                summary.stopped_by = stop
                break
            watch.after_step(done, end, writer.window)
        if guard.flush():
            raise writer.diverged(guard)
        train_step.settle_time_checks(summary.step)
    return saved, images, time.perf_counter() - started


def _log_line(
    ctx: DistContext,
    config: RunConfig,
    window: LogWindow,
    summary: TrainSummary,
    metrics: IO[str],
    step: int,
    lr: float,
    grad_norm: Tensor,
    started: float,
    watch: Watch,
) -> float | None:
    """Write the window's metrics line and note its mean loss in ``summary`` (None: every step was skipped)."""
    record, mean_loss = window.line(ctx, step, lr, grad_norm, config.train.batch_size * ctx.world, started)
    summary.skipped += record["skipped"]
    metrics.write(json.dumps(record) + "\n")
    metrics.flush()
    watch.metrics(record)
    if mean_loss is not None:
        summary.losses.append((step, mean_loss))
        summary.loss = mean_loss
    return mean_loss


def _check_net_memory(config: RunConfig, device: torch.device) -> None:
    """Refuse a network whose weights, EMA, gradients and AdamW moments cannot fit (built on 'meta': free)."""
    with torch.device("meta"):
        probe = build_net(config)
    weights = sum(p.numel() * p.element_size() for p in probe.parameters())
    check_memory(5 * weights, f"a network of {weights // 4:,} parameters (weights, EMA, gradients, AdamW)", device)
    batch = config.train.batch_size
    activations = saved_activation_bytes(probe, config.image_shape, batch, amp=config.train.amp)
    check_memory(
        5 * weights + activations,
        f"a training step of {batch:,} images per process (weights, EMA, gradients, AdamW and, at least, the "
        "activations autograd keeps; a smaller --batch-size fits)",
        device,
    )


def _load_training_state(ckpt: Checkpoint, net: nn.Module, ema: EMA, optimizer: torch.optim.Optimizer) -> None:
    """Weights, EMA, optimizer and RNG from a checkpoint; a state that does not fit is a one-line error."""
    where = f"checkpoint {ckpt.path}"
    check_weights(ckpt.net, net, f"{where} (raw weights)")
    check_weights(ckpt.ema, ema.net, f"{where} (EMA weights)")
    net.load_state_dict(ckpt.net)
    ema.net.load_state_dict(ckpt.ema)
    check_optimizer_state(ckpt.optimizer, list(net.parameters()), where)  # fused AdamW trusts the shapes
    try:
        optimizer.load_state_dict(ckpt.optimizer)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:
        raise ValueError(f"checkpoint {ckpt.path} holds an optimizer state that does not fit: {err}") from None
    torch.set_rng_state(ckpt.rng["torch"])  # shape and dtype checked by read_checkpoint


def _device_name(config: RunConfig | None, out: str | Path, resume: bool) -> str:
    """The configured device, known before the checkpoint is read in full (a bad one fails there)."""
    if config is not None or not resume:
        return config.train.device if config is not None else "auto"
    try:
        return RunConfig.model_validate_json((resolve_checkpoint(out) / "config.json").read_bytes()).train.device
    except (ValueError, OSError):
        return "auto"


def _resume_config(stored: RunConfig, requested: RunConfig | None) -> RunConfig:
    """On resume only the ``train`` section may change; everything else comes from the checkpoint."""
    if requested is None:
        return stored
    requested = requested.as_stored_by(stored)
    for section in ("corruption", "model", "data", "cond", "objective", "optim"):
        if getattr(requested, section) != getattr(stored, section):
            raise ValueError(
                f"cannot change {section} when resuming (only train.* settings such as --steps may change)"
            )
    if requested.train.seed != stored.train.seed or requested.train.batch_size != stored.train.batch_size:
        raise ValueError("cannot change train.seed or train.batch_size when resuming: the data order depends on them")
    return requested
