"""Training throughput of the default model: images/s, peak memory, and where a step's time goes.

One training step is split into phases, timed within the same step so the shares are
comparable on a noisy shared machine:

* ``data``      batch gather + uint8 -> float
* ``corrupt``   t and noise sampling, ``x_t = C_t x_0 + s_t eta``
* ``net``       network forward + backward
* ``loss``      ``C_t (h - x_0)``, the mean, and their backward
* ``optim``     gradient clipping, AdamW, EMA

Then whole-step throughput is compared across threads, channels_last and torch.compile
(round-robin repeats of the harness timer, medians), and the real ``softdiff.train.train`` loop is timed too.

    PYTHONPATH=$PWD python -m bench.speed.train_step   # writes bench/results/speed/train_step-COMMIT.json
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bench.harness import Result, round_robin, write_result
from softdiff.data import ImageData, load_dataset
from softdiff.score import Denoiser
from softdiff.train import EMA, RunConfig, build_net, train
from softdiff.train.objective import objective_for, statistics_for

console = Console()


def _data(n: int) -> ImageData:
    try:
        return load_dataset("fashion-mnist", "train").subset(n)
    except ValueError:  # no data set installed: random 28x28 images time the same
        return ImageData(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8))


class Step:
    """One training step of the default config, split into timed phases."""

    def __init__(self, config: RunConfig, data: ImageData, channels_last: bool, compile_net: bool) -> None:
        torch.manual_seed(0)
        self.config, self.data, self.channels_last = config, data, channels_last
        self.process = config.corruption.build(config.image_shape[1:])
        self.net = build_net(config)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.forward_net = torch.compile(self.net) if compile_net else self.net
        images = data.batch(slice(0, 512))
        stats = statistics_for(config, self.process, images, None)
        self.denoiser = Denoiser(self.forward_net, self.process, config.objective.parameterisation, stats=stats)
        self.objective, _ = objective_for(config.objective, self.process, None, self.denoiser, images, 0, None)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=config.optim.lr)
        o = config.optim
        self.ema = EMA(self.net, o.ema_halflife, o.ema_rampup, o.ema_decay)
        self.updates = 0

    def __call__(self) -> dict[str, float]:
        b = self.config.train.batch_size
        times: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            times[name] = times.get(name, 0.0) + now - clock
            clock = now

        g = torch.Generator().manual_seed(self.updates)
        x0 = self.data.batch(torch.randint(len(self.data), (b,), generator=g))
        if self.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        lap("data")
        t = torch.rand(b, generator=g)
        noise = torch.randn(x0.shape, generator=g)
        s = self.process.s(t)
        x_t = self.process.C(x0, t) + s[:, None, None, None] * noise
        lap("corrupt")
        out = self.denoiser(x_t, t)
        lap("net")
        h = out.detach().requires_grad_(True)
        loss = self.objective.term(h, x0, x_t, t, s).mean()
        loss.backward()
        lap("loss")
        out.backward(h.grad)
        lap("net")
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.optim.grad_clip or float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.updates += 1
        self.ema.update(self.net, self.updates, x0.shape[0])
        lap("optim")
        return times


def measure(step: Step, steps: int, warmup: int) -> tuple[float, dict[str, float]]:
    for _ in range(warmup):
        step()
    phases: dict[str, float] = {}
    start = time.perf_counter()
    for _ in range(steps):
        for name, value in step().items():
            phases[name] = phases.get(name, 0.0) + value
    elapsed = time.perf_counter() - start
    return steps * step.config.train.batch_size / elapsed, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (slow to build)")
    parser.add_argument("--tag", default=None, help="label a second configuration at the same commit")
    parser.add_argument("--out", type=Path, default=None, help="result file (default: bench/results/speed/...)")
    args = parser.parse_args()

    data = _data(4096)
    config = RunConfig.model_validate({"train": {"batch_size": args.batch_size}}).resolved(*data.shape[:2])
    params = sum(p.numel() for p in build_net(config).parameters())
    default_threads = torch.get_num_threads()

    # 1. phase shares and peak memory of the default step (default threads)
    step = Step(config, data, channels_last=False, compile_net=False)
    shares = []
    for _ in range(args.repeats):
        _, phases = measure(step, args.steps, warmup=2)
        total = sum(phases.values())
        shares.append({k: v / total for k, v in phases.items()})
    share = {k: statistics.median(s[k] for s in shares) for k in shares[0]}
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # 2. variants, round-robin (the harness timer) so machine load hits all of them alike;
    # the untimed first round warms each variant up (and builds the compiled one)
    variants = [(th, cl, False) for th in args.threads for cl in (False, True)]
    if not args.no_compile:
        variants.append((default_threads, False, True))
    steps_by_variant, threads_of = {}, {}
    for threads, channels_last, compiled in variants:
        key = f"threads={threads} channels_last={channels_last} compile={compiled}"
        torch.set_num_threads(threads)
        steps_by_variant[key], threads_of[key] = Step(config, data, channels_last, compiled), threads
    timing = round_robin(
        {key: (lambda step=step: [step() for _ in range(args.steps)]) for key, step in steps_by_variant.items()},
        args.repeats,
        warmup=1,
        before=lambda key: torch.set_num_threads(threads_of[key]),
    )
    torch.set_num_threads(default_threads)
    medians = {k: args.steps * args.batch_size / t.median for k, t in timing.items()}

    # 3. the real training loop (data order, per-step generators, logging, EMA), default config
    with tempfile.TemporaryDirectory() as tmp:
        loop_config = RunConfig.model_validate(
            {"train": {"batch_size": args.batch_size, "steps": args.steps * args.repeats + 2, "ckpt_every": 10**6}}
        )
        summary = train(loop_config, Path(tmp) / "run", data=data, progress=False)
    trainer_rate = summary.images_per_s

    table = Table(title=f"training step, default model ({params / 1e6:.3f}M params), batch {args.batch_size}")
    table.add_column("variant")
    table.add_column("images/s (median)", justify="right")
    for key, value in sorted(medians.items(), key=lambda kv: -kv[1]):
        table.add_row(key, f"{value:.1f}")
    table.add_row("softdiff.train.train loop (default threads)", f"{trainer_rate:.1f}")
    console.print(table)
    outside = share["corrupt"] + share["loss"]
    console.print(
        "step time shares: "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in share.items())
        + f"; corruption+loss {100 * outside:.1f}%"
    )
    console.print(f"peak RSS {peak_rss_mb:.0f} MB")
    parameters = {
        "params": params,
        "batch_size": args.batch_size,
        "steps_per_repeat": args.steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "compile": not args.no_compile,
    }
    metrics = {
        "images_per_s": medians,
        "fastest": max(medians, key=medians.get),
        "trainer_loop_images_per_s": trainer_rate,
        "phase_share": share,
        "corruption_plus_loss_share": outside,
        "peak_rss_mb": peak_rss_mb,
    }
    write_result(Result.now("speed", "train_step", parameters, metrics, tag=args.tag), args.out)


if __name__ == "__main__":
    main()
