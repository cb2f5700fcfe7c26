"""The training loop: AdamW + warm-up, gradient clipping, EMA, optional bf16/compile, exact resume.

Reproducibility and exact resume come from one rule: everything random in step ``k``
(the data batch, ``t``, the noise, dropout) is a function of ``(seed, k)`` alone, drawn
from generators seeded afresh each step. A run resumed from the checkpoint at step ``k``
therefore sees exactly the batches and noise an uninterrupted run would have seen.
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
from ..samplers.prior import GaussianPrior
from ..score import Denoiser
from .checkpoint import LATEST, read_checkpoint, resolve_checkpoint, save_checkpoint
from .config import RunConfig
from .distributed import ShardedBatches, check_world, global_draws, rank_seed
from .loading import build_net
from .lr import LRSchedule
from .objective import objective_for, precond_state, statistics_for, t_sampler_for

__all__ = ["train", "TrainSummary", "EMA", "derive_seed", "resolve_device", "BatchOrder", "METRICS"]

METRICS = "metrics.jsonl"


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a pure function of its parts (stable across processes and platforms)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for a missing CUDA is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device is 'cuda' but no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


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
    def update(self, net: nn.Module, updates: int, batch: int) -> None:
        decay = self.decay_at(updates, batch)
        ema_p = [p for p in self.net.parameters()]
        torch._foreach_lerp_(ema_p, [p.detach() for p in net.parameters()], 1.0 - decay)
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
) -> TrainSummary:
    """Train (or resume) the run in folder ``out``; returns the final step and loss.

    Under ``torchrun`` every process calls this: it joins the process group, trains a
    DDP-wrapped copy of the network on its share of a global batch of ``batch_size x
    WORLD_SIZE`` images, and only rank 0 writes ``out`` or shows progress (see
    :mod:`softdiff.train.distributed` and docs/distributed.md). Resuming needs the same
    number of processes.

    With ``resume=True`` the checkpoint's config is used when ``config`` is None; a given
    config may differ from it only in the ``train`` section (steps, device, threads, ...).

    ``data`` and ``net`` replace the configured data set and U-Net (your own module taking
    ``net(x_t, t)``). ``stop_at`` ends the loop after that many steps without a final
    checkpoint, exactly like a crash (used to test resume).
    """
    with distributed(resolve_device(_device_name(config, out, resume))) as ctx:
        return _train(ctx, config, out, resume, data, net, progress, console, stop_at)


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
) -> TrainSummary:
    run_dir = Path(out)
    ckpt = None
    if resume:
        if not (run_dir / LATEST).is_file():
            raise ValueError(f"cannot resume: {run_dir} has no checkpoint yet; drop --resume to start it")
        ckpt = read_checkpoint(run_dir)
        config = _resume_config(ckpt.config, config)
        check_world(ckpt.state.get("world_size"), ctx)
        ctx.check_same(ckpt.step, "the checkpoint step to resume from")
    elif config is None:
        raise ValueError("train() needs a config unless it resumes a run")
    elif (run_dir / LATEST).exists():
        raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")

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
    process = config.corruption.build((height, width))

    if net is None:
        torch.manual_seed(derive_seed(tc.seed, "init"))
        net = build_net(config)
    net = net.to(device)
    if tc.channels_last:
        net = net.to(memory_format=torch.channels_last)
    ema = EMA(net, config.optim.ema_halflife, config.optim.ema_rampup, config.optim.ema_decay)
    oc = config.optim
    optimizer = torch.optim.AdamW(net.parameters(), lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay)

    x_prior = data.subset(config.data.prior_images, seed=derive_seed(tc.seed, "prior")).batch(slice(None))
    stored = ckpt.precond if ckpt is not None else None
    stats = statistics_for(config, process, x_prior, stored)
    if ckpt is not None:
        net.load_state_dict(ckpt.net)
        ema.net.load_state_dict(ckpt.ema)
        optimizer.load_state_dict(ckpt.state["optimizer"])
        prior = GaussianPrior.from_state_dict(ckpt.prior)
        torch.set_rng_state(ckpt.state["rng"]["torch"])
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

    def checkpoint(step: int) -> Path:
        """Rank 0 writes (every rank holds the same weights); the barrier keeps the others from racing ahead."""
        rng = {"torch": torch.get_rng_state()}
        state = {"step": step, "optimizer": optimizer.state_dict(), "rng": rng, "world_size": ctx.world}
        ctx.barrier()
        if ctx.is_main:
            path = save_checkpoint(
                run_dir, step, config, net.state_dict(), ema.net.state_dict(), prior.state_dict(), state, tc.keep,
                precond,
            )  # fmt: skip
        ctx.barrier()
        return path if ctx.is_main else run_dir / "checkpoints" / f"step-{step:08d}"

    summary = TrainSummary(run_dir, start, logged[-1][1] if logged else math.nan, logged, net=net, ema_net=ema.net)
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
    window_loss = torch.zeros((), device=device)
    window_start, window_steps, images = time.perf_counter(), 0, 0
    started = time.perf_counter()
    with bar, (run_dir / METRICS).open("a") if ctx.is_main else open(os.devnull, "w") as metrics:
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
            grad_norm = nn.utils.clip_grad_norm_(net.parameters(), oc.grad_clip) if oc.grad_clip else None
            optimizer.step()
            ema.update(net, step + 1, tc.batch_size * ctx.world)
            window_loss += loss.detach()
            window_steps += 1
            images += x0.shape[0] * ctx.world
            done = step + 1
            if done % tc.log_every == 0 or done == end:
                mean_loss = float(ctx.mean(window_loss)) / window_steps
                if not math.isfinite(mean_loss):
                    raise ValueError(
                        f"the loss became {mean_loss} at step {done}; lower --lr or enable gradient clipping"
                    )
                now = time.perf_counter()
                record = {
                    "step": done,
                    "loss": mean_loss,
                    "lr": lr,
                    "grad_norm": float(grad_norm) if grad_norm is not None else None,
                    "images_per_s": window_steps * tc.batch_size * ctx.world / max(now - window_start, 1e-9),
                    "elapsed_s": now - started,
                }
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
                summary.losses.append((done, mean_loss))
                summary.loss = mean_loss
                bar.update(task, loss=f"{mean_loss:.4f}")
                window_loss.zero_()
                window_start, window_steps = now, 0
            bar.update(task, completed=done)
            summary.step = done
            if done % tc.ckpt_every == 0 and done != tc.steps:
                summary.checkpoint = checkpoint(done)
    elapsed = time.perf_counter() - started
    summary.images_per_s = images / elapsed if elapsed > 0 else 0.0
    if stop_at is None or summary.step == tc.steps:
        if summary.step > start or ckpt is None:
            summary.checkpoint = checkpoint(summary.step)
    return summary


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
