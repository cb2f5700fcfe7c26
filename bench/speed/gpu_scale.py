"""Training throughput on one device: softdiff's trainer against a bare PyTorch loop, for two networks.

For each network, two loops train the same network on the same batch size, precision,
memory format and optimizer:

* ``trainer``: softdiff's own training loop, ``softdiff.train.trainer._loop`` (what
  ``softdiff.train.train`` runs after its setup), built by the trainer's own
  ``_load_data`` / ``_Model.build`` / ``_Step.build``: data order and per-step generators,
  the learning-rate schedule, preconditioning, the objective, gradient clipping, the
  non-finite guard, fused AdamW, the EMA, the loss window and its metrics lines. Nothing
  of it is re-implemented here; setup (prior fit, statistics) is outside the timing.
* ``bare``: a plain PyTorch loop: gather a uint8 batch, ``x_t = C_t x_0 + s_t eta`` with the
  run's own operator, the network (bf16 autocast when the run uses it), the soft loss
  ``mean|C_t (h - x_0)|^2 + anchor mean|h - x_0|^2``, backward, the same fused AdamW step.

``ratio = trainer / bare`` images per second; the target is >= 0.9 (PASS/FAIL). The ratio
prices what the trainer adds to the bare step: per-step generators and the data order, the
preconditioning and loss weighting, gradient clipping, the non-finite guard (on CUDA it
waits for the previous step's flag), the EMA update and the loss window. The
networks are (a) the CIFAR-10 recipe's (``recipes/cifar10.toml``, 50.3M parameters at
3x32x32) and (b) the small main-job network (the default ``RunConfig``, 28x28 grey).
``--tiny`` shrinks the recipe network's widths and image (8 channels at 8x8) but keeps its
shape: 4 levels, 4 residual blocks per level, attention at the second level, mid block.

The loops run round-robin (the harness timer): ``--warmup`` untimed steps of each loop
first (``torch.compile`` builds there), then ``--repeats`` rounds of ``--steps`` steps of
each; images/s is the median over rounds. Peak memory of a loop is measured over its build
and warm-up: ``torch.cuda.max_memory_allocated`` minus what was allocated before it was
built (CUDA), or the growth of the process's peak RSS (CPU: a lower bound, freed memory is
reused). ``syncs/step`` counts host synchronisations over ``SYNC_STEPS`` untimed steps after
the warm-up (CUDA: the warnings of ``torch.cuda.set_sync_debug_mode``; CPU: ``.item()`` and
``bool()`` calls); both counts include what ends a call of the loop (the trainer's metrics line,
the bare loop's one read of its deferred time checks). ``--compile MODE`` compiles the network
of both loops in one of torch's modes (``train.compile``, through the one helper the trainer
uses); ``reduce-overhead`` replays it as CUDA graphs, on CUDA only.

    PYTHONPATH=$PWD python -m bench.speed.gpu_scale --device cuda   # bench/results/speed/gpu_scale-COMMIT.json
    PYTHONPATH=$PWD python -m bench.speed.gpu_scale --device cpu --threads 1 --tiny --steps 2 --warmup 1
    bash bench/gpu_scale.sh                                         # GPU defaults (see that file)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import resource
import tempfile
import warnings
from pathlib import Path
from typing import Any, get_args

import torch
from rich.console import Console
from rich.table import Table

from bench.harness import Result, result_path, round_robin, write_result
from bench.harness.cli import apply_threads
from bench.harness.result import ROOT, commit
from bench.speed.step_syncs import StepOps
from softdiff.corrupt.times import deferred_time_checks
from softdiff.data import ImageData
from softdiff.data.datasets import to_float
from softdiff.distributed import distributed, resolve_device
from softdiff.seeding import derive_seed
from softdiff.train import RunConfig, build_config, build_net
from softdiff.train import trainer as trainer_module
from softdiff.train.compilation import compiled, mark_step
from softdiff.train.config import CompileMode, apply_overrides, load_config_file
from softdiff.train.corruption import run_process
from softdiff.train.metrics import METRICS, LogWindow, start_metrics
from softdiff.train.watch import Watch

console = Console(width=120)
RECIPE = ROOT / "recipes" / "cifar10.toml"
NETWORKS = ("cifar10", "small")
TARGET = 0.9
TINY_SIDE, TINY_WIDTH = 8, 8  # --tiny: the recipe's network at 8x8 with 8 channels at full resolution
# settings that only change setup or what is written to disk, never the cost of a step
BENCH_TRAIN = {
    "steps": 10**8,  # the loop never reaches its end (no end-of-run work inside the timing)
    "ckpt_every": 10**9,
    "ckpt_minutes": None,
    "preview_every": None,
    "select_levels": False,  # the levels' values do not change the cost of C_t
    "check_operator": False,
    "tensorboard": False,
}
SYNC_STEPS = 5  # untimed steps per loop counted for host synchronisations (a metrics line every 25 steps: none)
PRIOR_IMAGES = 64  # images the trainer fits its prior and statistics on (setup only)


def network_config(name: str, batch: int, device: str, amp: str, compile_mode: str, tiny: bool) -> RunConfig:
    """The run config of one network: the recipe or the default config, with the benchmark's loop settings."""
    overrides: dict[str, Any] = {f"train.{k}": v for k, v in BENCH_TRAIN.items()}
    overrides |= {"train.batch_size": batch, "train.device": device, "train.compile": compile_mode}
    overrides["data.prior_images"] = PRIOR_IMAGES
    data = load_config_file(RECIPE) if name == "cifar10" else {}
    config = RunConfig.model_validate(apply_overrides(data, overrides, keep_none=True))  # None: turn off
    if name == "cifar10" and tiny:
        config = tiny_recipe(config)
    config = config.resolved(3 if name == "cifar10" else 1, image_side(name, tiny))  # as the trainer resolves it
    use_amp = {"on": True, "off": False, "auto": config.train.amp and device.startswith("cuda")}[amp]
    return config.model_copy(update={"train": config.train.model_copy(update={"amp": use_amp})})


def tiny_recipe(config: RunConfig) -> RunConfig:
    """The recipe's network at ``TINY_SIDE`` px and ``TINY_WIDTH`` channels: same levels, depth and attention level."""
    model = config.model
    scale = TINY_SIDE / image_side("cifar10", tiny=False)
    data = config.model_dump()
    data["model"] |= {
        "base_channels": TINY_WIDTH,
        "groups": min(model.groups, TINY_WIDTH),
        "attention_resolutions": [int(r * scale) for r in model.attention_resolutions or ()],
    }
    return RunConfig.model_validate(data)


def image_side(name: str, tiny: bool) -> int:
    if name == "cifar10":
        return TINY_SIDE if tiny else 32
    return 28


def synthetic_data(channels: int, side: int, batch: int) -> ImageData:
    """Random uint8 images (a step costs the same on any pixels; no data set is needed on the GPU machine)."""
    n = max(4 * batch, PRIOR_IMAGES)
    g = torch.Generator().manual_seed(0)
    return ImageData(torch.randint(0, 256, (n, channels, side, side), dtype=torch.uint8, generator=g))


class TrainerLoop:
    """softdiff's training loop after its setup, built by the trainer's own parts; ``run(n)`` trains ``n`` steps."""

    def __init__(self, config: RunConfig, data: ImageData, run_dir: Path) -> None:
        self._stack = contextlib.ExitStack()
        ctx = self._stack.enter_context(distributed(resolve_device(config.train.device)))
        t = trainer_module
        config = config.load_plugins()
        config, data, process = t._load_data(config, data, None, None, False, ctx.device)
        model = t._Model.build(ctx, config, process, data, None, None)
        run_dir.mkdir(parents=True, exist_ok=True)
        start_metrics(run_dir / METRICS, None)
        self.step = t._Step.build(ctx, config, process, data, model, None)
        window = LogWindow(ctx.device)
        self.writer = t._Checkpointer(ctx, run_dir, config, model, self.step.precond, window, None)
        self.watch = Watch.open(ctx, config, run_dir, model.ema.net, process, model.prior, model.stats, None)
        self.summary = t.TrainSummary(run_dir, 0, math.nan, [], net=model.net, ema_net=model.ema.net)
        self.bar = t._progress_bar(None, False, ctx)
        self.ctx, self.config, self.net = ctx, config, model.net

    def run(self, steps: int) -> None:
        end = self.summary.step + steps
        trainer_module._loop(self.ctx, self.config, self.step, self.writer, self.summary, end, self.bar, self.watch)
        assert self.summary.step == end, f"the trainer stopped at step {self.summary.step}, not {end}"

    def close(self) -> None:
        self.watch.close()
        self._stack.close()


class BareLoop:
    """A plain PyTorch training loop of the same network, batch, precision, memory format and optimizer."""

    def __init__(self, config: RunConfig, data: ImageData) -> None:
        tc, oc = config.train, config.optim
        self.device = resolve_device(tc.device)
        self.batch, self.channels_last = tc.batch_size, tc.channels_last
        self.amp = torch.bfloat16 if tc.amp else None
        _, self.process = run_process(config, data.shape[1:])
        self.anchor = config.objective.anchor
        torch.manual_seed(derive_seed(tc.seed, "init"))
        net = build_net(config).to(self.device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net.train()
        self.compile = tc.compile
        self.forward_net = compiled(net, tc.compile)
        self.optimizer = torch.optim.AdamW(
            net.parameters(), lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay, fused=True
        )
        self.images = data.images

    def step(self) -> None:
        mark_step(self.compile)
        index = torch.randint(len(self.images), (self.batch,))
        if self.device.type == "cuda":
            x0 = to_float(self.images[index].pin_memory().to(self.device, non_blocking=True))
        else:
            x0 = to_float(self.images[index])
        if self.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        t = torch.rand(self.batch, device=self.device)
        noise = torch.randn_like(x0)
        x_t = self.process.C(x0, t) + self.process.s(t)[:, None, None, None] * noise
        with torch.autocast(self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
            out = self.forward_net(x_t, t)
        r = x_t + out.float() - x0
        loss = self.process.C(r, t).square().mean() + self.anchor * r.square().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def run(self, steps: int) -> None:
        with deferred_time_checks() as times:  # the operators' [0, 1] checks read once, not at each call
            for _ in range(steps):
                self.step()
        times.settle("the bare loop")

    def close(self) -> None:
        pass


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build_and_warm(make: Any, warmup: int, device: torch.device) -> tuple[Any, dict[str, Any]]:
    """Build a loop and run its warm-up steps; its peak memory over both."""
    if device.type == "cuda":
        _sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        loop = make()
        loop.run(warmup)
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        return loop, {"peak_memory_mb": round(peak / 2**20, 1), "memory_kind": "cuda max_memory_allocated"}
    before = _rss_mb()
    loop = make()
    loop.run(warmup)
    return loop, {
        "peak_memory_mb": round(_rss_mb() - before, 1),
        "memory_kind": "growth of the process's peak RSS (ru_maxrss; a lower bound on CPU)",
    }


def host_syncs_per_step(loop: Any, steps: int, device: torch.device) -> float:
    """Synchronisations per step: CUDA's sync debug mode's warnings, or host reads on the CPU."""
    if device.type != "cuda":
        with StepOps() as ops:
            loop.run(steps)
        return ops.reads / steps
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            loop.run(steps)
            _sync(device)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / steps


def measure_network(name: str, args: argparse.Namespace, batch: int, tmp: Path) -> dict[str, Any]:
    config = network_config(name, batch, args.device, args.amp, args.compile, args.tiny)
    channels = 3 if name == "cifar10" else 1
    side = image_side(name, args.tiny)
    data = synthetic_data(channels, side, batch)
    device = resolve_device(config.train.device)
    makers = {
        "trainer": lambda: TrainerLoop(config, data, tmp / name),
        "bare": lambda: BareLoop(config, data),
    }
    loops, memory = {}, {}
    for loop_name, make in makers.items():
        loops[loop_name], memory[loop_name] = build_and_warm(make, args.warmup, device)
    syncs = {loop_name: host_syncs_per_step(loop, SYNC_STEPS, device) for loop_name, loop in loops.items()}
    params = sum(p.numel() for p in loops["bare"].net.parameters())
    trainer_params = sum(p.numel() for p in loops["trainer"].net.parameters())
    if trainer_params != params:
        raise RuntimeError(f"{name}: the trainer built {trainer_params:,} parameters, the bare loop {params:,}")
    timing = round_robin(
        {loop_name: (lambda loop=loop: loop.run(args.steps)) for loop_name, loop in loops.items()},
        args.repeats,
        warmup=0,
        device=device,
    )
    for loop in loops.values():
        loop.close()
    del loops
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    images = args.steps * batch
    result: dict[str, Any] = {
        "params": params,
        "image": [channels, side, side],
        "batch": batch,
        "amp_bf16": config.train.amp,
        "compile": config.train.compile,
        "channels_last": config.train.channels_last,
        "model": config.model.model_dump(mode="json"),
        "loops": {},
    }
    for loop_name, t in timing.items():
        result["loops"][loop_name] = {
            "images_per_s": images / t.median,
            "images_per_s_best": images / t.min,
            "ms_per_step": 1e3 * t.median / args.steps,
            **memory[loop_name],
            "syncs_per_step": syncs[loop_name],
            "timing_ms": t.summary(),
        }
    ratio = result["loops"]["trainer"]["images_per_s"] / result["loops"]["bare"]["images_per_s"]
    result["ratio"] = ratio
    result["pass"] = ratio >= TARGET
    return result


def parse_batches(items: list[str]) -> dict[str, int | None]:
    batches: dict[str, int | None] = dict.fromkeys(NETWORKS)
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in NETWORKS or not value.isdigit() or int(value) < 1:
            raise SystemExit(f"--batch takes NAME=N with NAME one of {', '.join(NETWORKS)}, got {item!r}")
        batches[name] = int(value)
    return batches


def default_batch(name: str) -> int:
    config = build_config(RECIPE) if name == "cifar10" else RunConfig()
    return config.train.batch_size


def out_path(out: str | None, tag: str | None) -> Path | None:
    """``--out``: a ``.json`` file, or a folder (made if missing) to hold the standard file name."""
    if out is None:
        return None
    path = Path(out)
    if path.suffix == ".json" and not path.is_dir():
        return path
    return path / result_path("speed", "gpu_scale", *commit(), tag).name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per loop first (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; images/s is their median")
    parser.add_argument(
        "--batch", action="append", default=[], metavar="NAME=N", help="batch of a network (cifar10=128, small=64)"
    )
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    parser.add_argument("--tiny", action="store_true", help="the recipe network at 8x8, 8 channels (CPU smoke test)")
    parser.add_argument(
        "--compile",
        choices=get_args(CompileMode),
        default="off",
        help="torch.compile mode of the network in both loops; reduce-overhead = CUDA graphs (default: %(default)s)",
    )
    parser.add_argument(
        "--amp",
        choices=("auto", "on", "off"),
        default="auto",
        help="bf16 autocast of the network: auto = the config's train.amp on CUDA, never on the CPU",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--tag", default=None, help="label a second configuration at the same commit")
    parser.add_argument("--out", default=None, help="result .json file or folder (default: bench/results/speed/)")
    args = parser.parse_args(argv)
    if min(args.steps, args.repeats) < 1 or args.warmup < 0:
        parser.error("--steps and --repeats must be >= 1, --warmup >= 0")
    apply_threads(args.threads)
    args.device = str(resolve_device(args.device))
    batches = {name: b or default_batch(name) for name, b in parse_batches(args.batch).items()}

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks:
            console.print(f"[bold]{name}[/]: building and warming up both loops ...")
            results[name] = measure_network(name, args, batches[name], Path(tmp))

    device_name = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "CPU"
    title = f"training throughput on {device_name} ({args.device}), --amp {args.amp}, --compile {args.compile}"
    table = Table(title=f"{title}, median of {args.repeats} rounds")
    columns = ("network", "params", "batch", "loop", "images/s", "ms/step", "peak MB", "syncs/step", "trainer/bare")
    for column in columns:
        table.add_column(column, justify="left" if column in ("network", "loop") else "right")
    for name, r in results.items():
        label = f"{name}{' (tiny)' if name == 'cifar10' and args.tiny else ''} {'x'.join(map(str, r['image']))}"
        verdict = f"{r['ratio']:.3f} {'PASS' if r['pass'] else 'FAIL'}"
        for i, (loop_name, m) in enumerate(r["loops"].items()):
            table.add_row(
                label if i == 0 else "",
                f"{r['params']:,}" if i == 0 else "",
                str(r["batch"]) if i == 0 else "",
                loop_name,
                f"{m['images_per_s']:.1f}",
                f"{m['ms_per_step']:.2f}",
                f"{m['peak_memory_mb']:.1f}",
                f"{m['syncs_per_step']:.1f}",
                verdict if i == 0 else "",
            )
    console.print(table)
    kind = next(iter(results.values()))["loops"]["trainer"]["memory_kind"]
    console.print(
        f"peak memory: {kind}; syncs: over {SYNC_STEPS} steps and the end of a loop call; target ratio >= {TARGET}"
    )
    notes = []
    if not args.device.startswith("cuda"):
        notes.append("CPU run: not a GPU measurement; peak memory is RSS growth")
        if args.compile == "reduce-overhead":
            notes.append("reduce-overhead on the CPU: no CUDA graphs (torch uses them on CUDA only)")
    if args.tiny:
        notes.append(f"--tiny: the cifar10 recipe network at {TINY_SIDE}x{TINY_SIDE} with {TINY_WIDTH} channels")
    parameters = {
        "device": args.device,
        "device_name": device_name,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "batches": {name: batches[name] for name in args.networks},
        "tiny": args.tiny,
        "compile": args.compile,
        "amp": args.amp,
    }
    metrics = {"networks": results, "target_ratio": TARGET}
    result = Result.now("speed", "gpu_scale", parameters, metrics, tag=args.tag, notes=notes)
    write_result(result, out_path(args.out, args.tag))


if __name__ == "__main__":
    main()
