"""The training loop: AdamW + warm-up, gradient clipping, EMA, optional bf16/compile, exact resume.

Reproducibility and exact resume come from one rule: everything random in step ``k``
(the data batch, ``t``, the noise, dropout) is a function of ``(seed, k)`` alone, drawn
from generators seeded afresh each step. A run resumed from the checkpoint at step ``k``
therefore sees exactly the batches and noise an uninterrupted run would have seen.

Work is never lost for long: checkpoints come every ``ckpt_every`` steps and every
``ckpt_minutes``, SIGTERM/SIGINT end the run after the current step with a checkpoint
(:mod:`.interrupt`), and a step whose loss or gradient is not finite changes nothing
(:mod:`.guard`); too many in a row stop the run with the last good checkpoint intact.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text
from torch import Tensor, nn

from ..data import ImageData, load_dataset
from ..distributed import DistContext, distributed
from ..imageio import atomic_write_bytes
from ..progress import LoggedProgress
from ..resources import check_memory, describe_os_error, writable_dir
from ..samplers.prior import GaussianPrior
from ..score import Denoiser
from .checkpoint import (
    CHECKPOINTS,
    Checkpoint,
    clean_temporaries,
    find_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from .config import RunConfig
from .corruption import Corruption, record_corruption, run_process
from .distributed import ShardedBatches, check_world, global_draws, rank_seed
from .guard import NonFiniteGuard, gradient_norm
from .interrupt import StepClock, StopSignals
from .loading import build_net
from .lr import LRSchedule
from .objective import objective_for, precond_state, statistics_for, t_sampler_for

__all__ = ["train", "TrainSummary", "EMA", "derive_seed", "resolve_device", "BatchOrder", "METRICS"]

METRICS = "metrics.jsonl"


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a pure function of its parts (stable across processes and platforms)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unknown or missing device is a one-line ``ValueError``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):  # torch's parse error for names like "tpu" or ""
        raise ValueError(f"unknown device {name!r}; use {DEVICES}") from None
    if device.type == "cpu" and device.index in (None, 0):
        return torch.device("cpu")
    if device.type != "cuda":
        raise ValueError(f"device {name!r} is not supported; use {DEVICES}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for CUDA but no CUDA device is available; use --device cpu or auto")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


class BatchOrder:
    """Shuffled epochs without replacement; epoch ``e`` is a permutation seeded by ``(seed, e)``."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        if size < batch_size:
            raise ValueError(f"the data set has {size} images, fewer than the batch size {batch_size}")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.per_epoch = size // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> Tensor:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "data", epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.size, generator=g)
        return self._perm[k * self.batch_size : (k + 1) * self.batch_size]


class EMA:
    """Exponential moving average of a network's weights.

    EDM's rule (Karras et al. 2022): after ``images`` training images in all, the average
    has a half-life of ``min(halflife, rampup * images)`` images, so each update of
    ``batch`` images decays it by ``0.5 ** (batch / half-life)``. The ramp-up makes a short run
    average over its recent past instead of its poor start, and a half-life counted in images
    does not change with the batch or world size. ``decay`` (a fixed per-step value, warmed up
    as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates) replaces the rule when given.
    """

    def __init__(
        self, net: nn.Module, halflife: float = 500_000, rampup: float | None = 0.05, decay: float | None = None
    ) -> None:
        self.halflife, self.rampup, self.decay = halflife, rampup, decay
        self.net = copy.deepcopy(net).eval().requires_grad_(False)

    def decay_at(self, updates: int, batch: int) -> float:
        """The decay of update number ``updates`` (from 1), each of ``batch`` images in all."""
        if self.decay is not None:
            return min(self.decay, (1 + updates) / (10 + updates))
        halflife = self.halflife if self.rampup is None else min(self.halflife, self.rampup * updates * batch)
        return 0.5 ** (batch / halflife)

    @torch.no_grad()
    def update(self, net: nn.Module, updates: int, batch: int, skip: Tensor | None = None) -> None:
        """Move towards ``net`` after its ``updates``-th update; a ``skip`` flag of 1 (on the device) leaves it."""
        decay = self.decay_at(updates, batch)
        ema_p = [p for p in self.net.parameters()]
        weight: float | Tensor = 1.0 - decay if skip is None else (1.0 - decay) * (1 - skip)
        torch._foreach_lerp_(ema_p, [p.detach() for p in net.parameters()], weight)
        for b_ema, b in zip(self.net.buffers(), net.buffers(), strict=True):
            b_ema.copy_(b)


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


def _start_metrics(path: Path, resume_step: int | None) -> list[tuple[int, float]]:
    """Fresh file, or on resume drop lines logged after the checkpoint (they will be redone).

    Returns the ``(step, loss)`` pairs kept, so a resumed summary covers the whole run.
    """
    kept: list[str] = []
    losses: list[tuple[int, float]] = []
    if resume_step is not None and path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
                if record["step"] <= resume_step:
                    kept.append(line)
                    if record["loss"] is not None:  # None: every step of that window was skipped
                        losses.append((record["step"], record["loss"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a crash
    atomic_write_bytes(path, "".join(f"{line}\n" for line in kept).encode())
    return losses


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
    :mod:`softdiff.train.distributed` and docs/distributed.md). Resuming needs the same
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
    ckpt = None
    fresh_start = False
    if resume:
        found = find_checkpoint(run_dir)
        ctx.check_same(found is not None, "whether there is a checkpoint to resume from")
        if found is not None:
            ckpt = read_checkpoint(found)
            config = _resume_config(ckpt.config, config)
            check_world(ckpt.state.get("world_size"), ctx)
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

    tc = config.train
    if tc.threads is not None:
        torch.set_num_threads(tc.threads)
    device = ctx.device

    if data is None:
        data = load_dataset(
            config.data.dataset,
            "train",
            config.data.data_dir,
            image_size=config.data.image_size,
            channels=config.data.channels,
        )
    channels, height, width = data.shape
    if height != width:
        raise ValueError(f"training needs square images, the data set has {height}x{width}")
    if config.data.image_size is not None and config.data.image_size != height:
        raise ValueError(f"data.image_size is {config.data.image_size} but the data set has {height}x{width} images")
    config = config.resolved(channels, height)
    config, process = run_process(config, (height, width), corruption, ckpt.config.operator if ckpt else None)

    if net is None:
        _check_net_memory(config, device)
        torch.manual_seed(derive_seed(tc.seed, "init"))
        net = build_net(config)
    net = net.to(device)
    if tc.channels_last:
        net = net.to(memory_format=torch.channels_last)
    ema = EMA(net, config.optim.ema_halflife, config.optim.ema_rampup, config.optim.ema_decay)
    oc = config.optim
    # fused: the step takes the non-finite guard's flag on the device (found_inf) and skips itself
    optimizer = torch.optim.AdamW(net.parameters(), lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay, fused=True)

    prior_images = min(config.data.prior_images, len(data))
    check_memory(3 * 8 * prior_images * channels * height * width, f"fitting the prior on {prior_images} images")
    x_prior = data.subset(config.data.prior_images, seed=derive_seed(tc.seed, "prior")).batch(slice(None))
    stored = ckpt.precond if ckpt is not None else None
    stats = statistics_for(config, process, x_prior, stored)
    if ckpt is not None:
        _load_training_state(ckpt, net, ema, optimizer)
        prior = GaussianPrior.from_state_dict(ckpt.prior)
        start = ckpt.step
    else:
        prior = GaussianPrior.fit(process, x_prior, rank=config.data.prior_rank)
        start = 0
    logged: list[tuple[int, float]] = []
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / "config.json", config.model_dump_json(indent=2).encode())
        logged = _start_metrics(run_dir / METRICS, start if ckpt is not None else None)

    parallel_net = ctx.wrap(net)  # DDP when there are several processes; the EMA follows the bare `net`
    forward_net: nn.Module = torch.compile(parallel_net) if tc.compile else parallel_net  # type: ignore[assignment]
    autocast = torch.bfloat16 if tc.amp else None
    denoiser = Denoiser(forward_net, process, config.objective.parameterisation, autocast, stats)
    objective, scale = objective_for(
        config.objective, process, t_sampler_for(config, process), denoiser, x_prior,
        derive_seed(tc.seed, "loss-scale"), stored,
    )  # fmt: skip
    precond = precond_state(stats, scale)
    lr_at = LRSchedule(oc.lr, oc.warmup, tc.steps, oc.lr_decay, oc.lr_final)
    batches = ShardedBatches(data, BatchOrder(len(data), tc.batch_size * ctx.world, tc.seed), ctx, tc.channels_last)

    guard = NonFiniteGuard(tc.max_bad_steps, ctx)
    last_good: list[Path | None] = [ckpt.path if ckpt is not None else None]
    window = _Window(device, ckpt.state.get("window") if ckpt is not None else None)

    def checkpoint(step: int) -> Path:
        """Rank 0 writes (every rank holds the same weights); the barrier keeps the others from racing ahead."""
        rng = {"torch": torch.get_rng_state()}
        state = {"step": step, "optimizer": optimizer.state_dict(), "rng": rng, "world_size": ctx.world}
        state["window"] = window.state(ctx)  # the partial logging window: the next metrics line is exact after resume
        ctx.barrier()
        if ctx.is_main:
            try:
                path = save_checkpoint(
                    run_dir, step, config, net.state_dict(), ema.net.state_dict(), prior.state_dict(), state, tc.keep,
                    precond,
                )  # fmt: skip
            except OSError as err:
                kept = f"the last complete checkpoint is {last_good[0]}" if last_good[0] else "no checkpoint was kept"
                message = describe_os_error(err, f"could not write the checkpoint of step {step}")
                raise OSError(f"{message}; {kept}") from None
        ctx.barrier()
        last_good[0] = path if ctx.is_main else run_dir / "checkpoints" / f"step-{step:08d}"
        return last_good[0]

    def diverged() -> ValueError:
        where = f"the last good checkpoint is {last_good[0]}" if last_good[0] else "no checkpoint was written"
        return ValueError(
            f"the loss or gradient was not finite for {guard.streak} steps in a row (steps {guard.first_bad} to "
            f"{guard.last_step}); stopped, {where}; lower --lr or keep gradient clipping on (optim.grad_clip)"
        )

    summary = TrainSummary(run_dir, start, logged[-1][1] if logged else math.nan, logged, net=net, ema_net=ema.net)
    summary.fresh_start = fresh_start
    end = tc.steps if stop_at is None else min(tc.steps, stop_at)
    bar = LoggedProgress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        _Speed(),
        TimeRemainingColumn(),
        console=console,
        disable=not (progress and ctx.is_main),
    )
    net.train()
    params = list(net.parameters())
    images = 0
    started = time.perf_counter()
    saved = start
    with (
        bar,
        StopSignals() as signals,
        (run_dir / METRICS).open("a") if ctx.is_main else open(os.devnull, "w") as metrics,
    ):
        clock = StepClock(signals, tc.ckpt_minutes, ctx)
        task = bar.add_task("train", total=tc.steps, completed=start, loss="--")
        for step in range(start, end):
            g = torch.Generator(device=device).manual_seed(derive_seed(tc.seed, "step", step))
            torch.manual_seed(rank_seed(derive_seed(tc.seed, "global", step), ctx))  # dropout, other global draws
            x0 = batches(step)
            lr = lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            t, noise = global_draws(objective.t_sampler, x0, g, ctx)
            loss = objective(denoiser, x0, t=t, noise=noise).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = gradient_norm(params, oc.grad_clip)
            bad = guard.flag(loss, grad_norm)
            optimizer.found_inf = bad  # type: ignore[attr-defined]  # fused AdamW skips the update where bad = 1
            optimizer.step()
            ema.update(net, step + 1, tc.batch_size * ctx.world, skip=bad)
            window.add(loss, bad)
            images += x0.shape[0] * ctx.world
            done = step + 1
            if guard.record(done, bad):
                raise diverged()
            if done % tc.log_every == 0 or done == end:
                record, mean_loss = window.line(ctx, done, lr, grad_norm, tc.batch_size * ctx.world, started)
                summary.skipped += record["skipped"]
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
                if mean_loss is not None:
                    summary.losses.append((done, mean_loss))
                    summary.loss = mean_loss
                    bar.update(task, loss=f"{mean_loss:.4f}")
            bar.update(task, completed=done)
            summary.step = done
            stop, due = clock.poll()  # stop: the name of the signal some rank received
            if (stop or due or done % tc.ckpt_every == 0) and done != tc.steps:
                if guard.flush():
                    raise diverged()
                if stop or guard.streak == 0:  # during a run of bad steps the last good checkpoint stays the latest
                    summary.checkpoint = checkpoint(done)
                    saved = done
                    clock.checkpointed()
            if stop and done != tc.steps:
                summary.stopped_by = stop
                break
        if guard.flush():
            raise diverged()
    elapsed = time.perf_counter() - started
    summary.images_per_s = images / elapsed if elapsed > 0 else 0.0
    if summary.stopped_by is None and (stop_at is None or summary.step == tc.steps):
        if summary.step > saved or ckpt is None:
            summary.checkpoint = checkpoint(summary.step)
    return summary


class _Window:
    """The losses of the steps since the last metrics line, kept on the device (no sync per step)."""

    def __init__(self, device: torch.device, state: dict | None = None) -> None:
        self.loss = torch.zeros((), device=device)
        self.good = torch.zeros((), device=device)
        self.steps, self.start = 0, time.perf_counter()
        if isinstance(state, dict):  # restored from a checkpoint taken between two metrics lines
            self.loss += float(state.get("loss", 0.0))
            self.good += float(state.get("good", 0.0))
            self.steps = int(state.get("steps", 0))

    def add(self, loss: Tensor, bad: Tensor) -> None:
        self.loss += torch.where(bad > 0, 0.0, loss.detach())
        self.good += 1 - bad
        self.steps += 1

    def state(self, ctx: DistContext) -> dict[str, float]:
        """What a checkpoint keeps of the window (the loss as the mean over ranks, as it will be logged)."""
        return {"loss": float(ctx.mean(self.loss)), "good": float(self.good), "steps": self.steps}

    def line(
        self, ctx: DistContext, step: int, lr: float, grad_norm: Tensor, batch: int, started: float
    ) -> tuple[dict, float | None]:
        """The metrics record of the window (mean loss over its good steps), and reset."""
        good = float(self.good)
        total = float(ctx.mean(self.loss))
        mean_loss = total / good if good > 0 else None
        now = time.perf_counter()
        norm = float(grad_norm)
        record = {
            "step": step,
            "loss": mean_loss,
            "lr": lr,
            "grad_norm": norm if math.isfinite(norm) else None,
            "images_per_s": self.steps * batch / max(now - self.start, 1e-9),
            "elapsed_s": now - started,
            "skipped": int(round(self.steps - good)),
        }
        self.loss.zero_()
        self.good.zero_()
        self.steps, self.start = 0, now
        return record, mean_loss


def _check_net_memory(config: RunConfig, device: torch.device) -> None:
    """Refuse a network whose weights, EMA, gradients and AdamW moments cannot fit (built on 'meta': free)."""
    with torch.device("meta"):
        probe = build_net(config)
    weights = sum(p.numel() * p.element_size() for p in probe.parameters())
    check_memory(5 * weights, f"a network of {weights // 4:,} parameters (weights, EMA, gradients, AdamW)", device)


def _load_training_state(ckpt: Checkpoint, net: nn.Module, ema: EMA, optimizer: torch.optim.Optimizer) -> None:
    """Weights, EMA, optimizer and RNG from a checkpoint; a state that does not fit is a one-line error."""
    try:
        net.load_state_dict(ckpt.net)
        ema.net.load_state_dict(ckpt.ema)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {ckpt.path} does not fit the network: {str(err).splitlines()[0]}") from None
    try:
        optimizer.load_state_dict(ckpt.state["optimizer"])
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:
        raise ValueError(f"checkpoint {ckpt.path} holds an optimizer state that does not fit: {err}") from None
    torch.set_rng_state(ckpt.state["rng"]["torch"])  # shape and dtype checked by read_checkpoint


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
    if stored.data.channels is not None and stored.data.image_size is not None:
        requested = requested.resolved(stored.data.channels, stored.data.image_size)
    for section in ("corruption", "model", "data", "objective", "optim"):
        if getattr(requested, section) != getattr(stored, section):
            raise ValueError(
                f"cannot change {section} when resuming (only train.* settings such as --steps may change)"
            )
    if requested.train.seed != stored.train.seed or requested.train.batch_size != stored.train.batch_size:
        raise ValueError("cannot change train.seed or train.batch_size when resuming: the data order depends on them")
    return requested
