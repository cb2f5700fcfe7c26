"""Sampler overhead: each sampler's wall time over ``NFE x`` the network's forward time.

Target: at most 1.05 — operator applications, noise draws and bookkeeping must not rival
the network. Both timings come from the same run and are interleaved round by round
(forward-only loop, then the sampler, on the same batch and grid), so machine load
affects both alike; interference only ever adds time, so each ratio is the best
(minimum) sampler time over the best forward time. Each is measured in wall time and in
CPU time of this process (on a shared, loaded CPU the wall clock mostly measures the
neighbours; CPU time measures the work). ``overhead ms`` is the sampler's own cost per
denoiser call, timed with a free denoiser (``x0_hat = x``); ``1 + overhead / forward``
is the same ratio from its two parts, far less sensitive to machine load.

    PYTHONPATH=$PWD python -m bench.speed.sampler_overhead [--threads 1 --steps 8 --rounds 3 --batch 64]
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

from bench.harness import Result, round_robin, write_result
from bench.harness.cli import add_common, apply_threads
from softdiff.corrupt import build_process
from softdiff.models import UNet, UNetConfig
from softdiff.samplers import SeededNoise, get, names, nfe, uniform_grid
from softdiff.score import Denoiser

TARGET = 1.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="sampler steps (first-order NFE)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per sampler")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--processes", default="blur,blur+mask")
    add_common(parser)
    args = parser.parse_args()
    apply_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    config = UNetConfig(image_size=args.size)
    net = UNet(config).to(device).eval().requires_grad_(False)
    x1 = torch.randn(args.batch, config.in_channels, args.size, args.size, device=device)
    ts = uniform_grid(args.steps)
    rows = []

    def free_denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x

    def sample(name: str, denoiser, process) -> torch.Tensor:  # noqa: ANN001
        """As ``generate`` runs it: per-sample seeded noise."""
        return get(name)(denoiser, process, x1, ts, generator=SeededNoise(0, range(args.batch)))

    with torch.no_grad():
        for spec in args.processes.split(","):
            process = build_process(spec, (args.size, args.size))
            denoiser = Denoiser(net, process)
            times = ts.to(device=device, dtype=x1.dtype)
            denoiser(x1, times[0].repeat(args.batch))  # warm-up
            for name in names():
                calls = nfe(name, args.steps)
                # the network alone, at the grid's times (Heun's extra calls land on the next time)
                call_times = [times[i].repeat(args.batch) for i in range(args.steps)]
                call_times = (call_times * 2)[:calls]
                variants = {
                    "forward": lambda: [net(x1, t) for t in call_times],  # noqa: B023
                    "sampler": lambda: sample(name, denoiser, process),  # noqa: B023
                }
                timing = round_robin(variants, args.rounds, warmup=0, device=device)
                free = round_robin({"free": lambda: sample(name, free_denoiser, process)}, 5, warmup=0)  # noqa: B023
                forward, sampled = timing["forward"], timing["sampler"]
                best_forward = [forward.min, forward.cpu_min]
                best_sampled = [sampled.min, sampled.cpu_min]
                overhead = free["free"].cpu_min / calls  # CPU seconds per call
                rows.append(
                    {
                        "process": spec,
                        "sampler": name,
                        "steps": args.steps,
                        "nfe": calls,
                        "forward_ms": 1000 * best_forward[0] / calls,
                        "forward_cpu_ms": 1000 * best_forward[1] / calls,
                        "sampler_s": best_sampled[0],
                        "overhead_cpu_ms_per_call": 1000 * overhead,
                        "ratio_wall": best_sampled[0] / best_forward[0],
                        "ratio_cpu": best_sampled[1] / best_forward[1],
                        "ratio_from_parts": 1 + overhead / (best_forward[1] / calls),
                        "rounds_wall_s": [list(pair) for pair in zip(forward.wall, sampled.wall, strict=True)],
                    }
                )

    table = Table(title=f"sampler wall time / (NFE x forward), batch {args.batch}, {args.size}x{args.size}, {device}")
    columns = ("process", "sampler", "NFE", "fwd ms", "fwd CPU ms", "ovh CPU ms", "wall", "CPU", "1+ovh/fwd")
    for column in columns:
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            r["process"],
            r["sampler"],
            str(r["nfe"]),
            f"{r['forward_ms']:.0f}",
            f"{r['forward_cpu_ms']:.0f}",
            f"{r['overhead_cpu_ms_per_call']:.2f}",
            f"{r['ratio_wall']:.3f}",
            f"{r['ratio_cpu']:.3f}",
            f"{r['ratio_from_parts']:.4f}",
        )
    Console().print(table)
    parameters = {
        "target_ratio": TARGET,
        "batch": args.batch,
        "image_size": args.size,
        "steps": args.steps,
        "rounds": args.rounds,
        "device": str(device),
        "processes": args.processes,
        "net_parameters": sum(p.numel() for p in net.parameters()),
    }
    write_result(Result.now("speed", "sampler_overhead", parameters, {"rows": rows}, tag=args.tag), args.out)


if __name__ == "__main__":
    main()
