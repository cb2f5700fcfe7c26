"""Speed of the default U-Net on CPU: forward and forward+backward per batch, eager vs channels_last vs compile.

Usage: ``python bench/unet.py [--batch 64] [--size 28] [--repeats 15] [--threads 2] [--no-compile]``.

Variants are timed round-robin (one batch each per round) so that load from other processes
hits all of them alike; the table reports medians and the ratios within this one run, and
``bench/results/unet.json`` keeps the numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from softdiff.models import UNet, UNetConfig

RESULTS = Path(__file__).parent / "results" / "unet.json"


class _Timeout(Exception):
    """Raised by SIGALRM when building a compiled variant takes too long."""


def _alarm(_signum: int, _frame: object) -> None:
    raise _Timeout("compile build timed out")


def make_variant(channels_last: bool, compiled: bool, x: torch.Tensor) -> tuple[Callable[[], None], Callable[[], None]]:
    """(forward, forward+backward) closures for one variant; all variants start from the same weights."""
    torch.manual_seed(0)
    net = UNet(UNetConfig())
    with torch.no_grad():  # non-zero output layer so backward does the full amount of work
        net.conv_out.weight.normal_(0, 0.01)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    xin = x.contiguous(memory_format=fmt)
    t = torch.rand(x.shape[0], generator=torch.Generator().manual_seed(1))
    fn = torch.compile(net) if compiled else net

    def forward() -> None:
        with torch.no_grad():
            fn(xin, t)

    def train_step() -> None:
        net.zero_grad(set_to_none=True)
        fn(xin, t).square().mean().backward()

    return forward, train_step


def timed(f: Callable[[], None]) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument(
        "--compile-timeout", type=int, default=180, help="seconds allowed to build each compiled variant"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON results")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    console = Console()
    x = torch.randn(args.batch, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))
    n_params = sum(p.numel() for p in UNet(UNetConfig()).parameters())

    variants: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}
    compile_info: dict[str, object] = {"attempted": not args.no_compile}
    for name, cl, comp in [
        ("eager", False, False),
        ("eager channels_last", True, False),
        ("compiled", False, True),
        ("compiled channels_last", True, True),
    ]:
        if comp and args.no_compile:
            continue
        if comp and any("exceeded" in str(v) for v in compile_info.values()):
            compile_info[name] = "skipped: an earlier compiled variant did not build in time"
            continue
        fwd, step = make_variant(cl, comp, x)
        # warm-up (for compiled variants this builds the graphs; bounded by an alarm)
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(args.compile_timeout if comp else 0)
        start = time.perf_counter()
        try:
            build = timed(fwd) + timed(step)
            fwd(), step()
        except Exception as err:  # any compile failure is a result to report, not a crash
            # inductor wraps the alarm's exception, so recognise a timeout by the clock
            if time.perf_counter() - start >= args.compile_timeout - 1:
                compile_info[name] = f"build exceeded {args.compile_timeout}s; skipped"
            else:
                compile_info[name] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
            console.print(f"[yellow]{name}: {compile_info[name]}")
            continue
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        if comp:
            compile_info[name] = f"ok, first forward+backward (incl. build) {build:.1f}s"
        variants[name] = (fwd, step)

    fwd_times: dict[str, list[float]] = {k: [] for k in variants}
    step_times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, (fwd, step) in variants.items():
            fwd_times[name].append(timed(fwd))
            step_times[name].append(timed(step))

    rows = {}
    for name in variants:
        f, s = statistics.median(fwd_times[name]), statistics.median(step_times[name])
        rows[name] = {
            "forward_ms": 1e3 * f,
            "forward_images_per_s": args.batch / f,
            "forward_backward_ms": 1e3 * s,
            "forward_backward_images_per_s": args.batch / s,
            "forward_ms_min": 1e3 * min(fwd_times[name]),
            "forward_backward_ms_min": 1e3 * min(step_times[name]),
        }
    ratios = {}
    pairs = [
        ("channels_last/contiguous (eager)", "eager channels_last", "eager"),
        ("compiled/eager (contiguous)", "compiled", "eager"),
        ("compiled/eager (channels_last)", "compiled channels_last", "eager channels_last"),
    ]
    for label, a, b in pairs:
        if a in rows and b in rows:
            ratios[label] = {
                "forward_time_ratio": rows[a]["forward_ms"] / rows[b]["forward_ms"],
                "forward_backward_time_ratio": rows[a]["forward_backward_ms"] / rows[b]["forward_backward_ms"],
            }

    table = Table(
        title=f"UNet default ({n_params:,} params), batch {args.batch}, {args.size}x{args.size}, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    for col in ("variant", "fwd ms", "fwd img/s", "fwd+bwd ms", "fwd+bwd img/s"):
        table.add_column(col, justify="right" if col != "variant" else "left")
    for name, r in rows.items():
        table.add_row(
            name,
            f"{r['forward_ms']:.1f}",
            f"{r['forward_images_per_s']:.0f}",
            f"{r['forward_backward_ms']:.1f}",
            f"{r['forward_backward_images_per_s']:.0f}",
        )
    console.print(table)
    ratio_table = Table(title="time ratios (< 1 means faster)")
    for col in ("comparison", "forward", "forward+backward"):
        ratio_table.add_column(col)
    for label, r in ratios.items():
        ratio_table.add_row(label, f"{r['forward_time_ratio']:.2f}", f"{r['forward_backward_time_ratio']:.2f}")
    console.print(ratio_table)
    for k, v in compile_info.items():
        if k != "attempted":
            console.print(f"torch.compile {k}: {v}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "unet",
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "torch": torch.__version__,
                "machine": platform.processor() or platform.machine(),
                "threads": args.threads,
                "batch": args.batch,
                "image": [1, args.size, args.size],
                "repeats": args.repeats,
                "parameters": n_params,
                "config": UNetConfig().model_dump(),
                "variants": rows,
                "ratios": ratios,
                "compile": compile_info,
                "note": "shared 2-core machine: timings are noisy; compare ratios measured within one run",
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
