"""Speed of the corruption operators on 64x3x64x64 batches (a benchmark, not a test).

Targets (issue 2): the default blur within 1.5x of the fastest exact blur path at every
width, and per-sample ``t`` within 1.2x of one shared ``t``. Paths are timed round-robin
(one call of each per repeat) so load from other processes hits them alike; the table shows
medians. Run: ``PYTHONPATH=$PWD python -m bench.speed.operators [--repeats N] [--threads 1]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table

from bench.harness import Result, round_robin, write_result
from bench.harness.cli import add_common, apply_threads
from softdiff.corrupt import GaussianBlur, LinearCorruption, Mask

WIDTHS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 24.0)
SHAPE = (64, 3, 64, 64)


def timed_ms(jobs: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """(median, min) milliseconds of each job, one call of every job per round (the harness timer)."""
    return {name: (1e3 * t.median, 1e3 * t.min) for name, t in round_robin(jobs, repeats).items()}


def maps(op: LinearCorruption, x: torch.Tensor, t: torch.Tensor | float) -> dict[str, Callable[[], object]]:
    return {"forward": lambda: op(x, t), "adjoint": lambda: op.adjoint(x, t)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    add_common(parser, threads=2)  # --threads 1 avoids thread-barrier stalls on a busy machine
    args = parser.parse_args()
    apply_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(SHAPE, generator=g)
    t_each = torch.rand(SHAPE[0], generator=g)
    rows: list[dict[str, object]] = []

    with torch.no_grad():
        # 1. every blur path at fixed widths (sigma_min = sigma_max = width)
        for width in WIDTHS:
            paths = {"dct": GaussianBlur(width, width), "kornia-reflect": GaussianBlur(width, width, backend="kornia")}
            jobs = {f"{p}/{m}": f for p, op in paths.items() for m, f in maps(op, x, t_each).items()}
            ms = timed_ms(jobs, args.repeats)
            for p, op in paths.items():
                exact = not bool(op.truncated(0.5, *SHAPE[-2:]))
                for m in ("forward", "adjoint"):
                    rows.append(
                        {
                            "group": "blur width",
                            "operator": p,
                            "width": width,
                            "map": m,
                            "ms": ms[f"{p}/{m}"][0],
                            "min_ms": ms[f"{p}/{m}"][1],
                            "exact": exact,
                        }
                    )

        # 2. per-sample t against one shared t, default blur and the masks
        ops = {"blur (dct)": GaussianBlur(0.01, 24.0), **{f"mask {k}": Mask(k) for k in ("pixels", "box", "fade")}}
        for name, op in ops.items():
            jobs = {
                f"{tn}/{m}": f
                for tn, tt in (("per-sample", t_each), ("shared", 0.5))
                for m, f in maps(op, x, tt).items()
            }
            ms = timed_ms(jobs, args.repeats)
            for m in ("forward", "adjoint"):
                for tn in ("per-sample", "shared"):
                    rows.append(
                        {
                            "group": "time",
                            "operator": name,
                            "t": tn,
                            "map": m,
                            "ms": ms[f"{tn}/{m}"][0],
                            "min_ms": ms[f"{tn}/{m}"][1],
                            "exact": True,
                        }
                    )

    def ms_of(key: str = "ms", **match: object) -> float:
        return next(float(r[key]) for r in rows if all(r.get(k) == v for k, v in match.items()))  # type: ignore[arg-type]

    def ratios(key: str) -> tuple[dict[str, float], dict[str, float]]:
        """default blur / fastest exact path per width, and per-sample / shared t, from ``key`` times."""
        blur_rows = [r for r in rows if r["group"] == "blur width" and r["exact"]]
        width = {
            f"{w}/{m}": ms_of(key, group="blur width", operator="dct", width=w, map=m)
            / min(float(r[key]) for r in blur_rows if r["width"] == w and r["map"] == m)
            for w in WIDTHS
            for m in ("forward", "adjoint")
        }
        per_sample = {
            f"{name}/{m}": ms_of(key, group="time", operator=name, t="per-sample", map=m)
            / ms_of(key, group="time", operator=name, t="shared", map=m)
            for name in ops
            for m in ("forward", "adjoint")
        }
        return width, per_sample

    width_ratios, time_ratios = ratios("ms")
    width_ratios_min, time_ratios_min = ratios("min_ms")

    console = Console()
    table = Table(
        title=f"blur paths, {'x'.join(map(str, SHAPE))} float32, {args.threads} thread(s), median of {args.repeats}, ms"
    )
    for col in (
        "width px",
        "dct fwd",
        "dct adj",
        "kornia-reflect fwd",
        "kornia-reflect adj",
        "default / fastest exact (fwd, adj)",
    ):
        table.add_column(col, justify="right")
    for w in WIDTHS:
        exact = next(bool(r["exact"]) for r in rows if r.get("operator") == "kornia-reflect" and r.get("width") == w)
        mark = "" if exact else " (truncated, not exact)"
        table.add_row(
            f"{w:g}",
            *(f"{ms_of(group='blur width', operator='dct', width=w, map=m):.2f}" for m in ("forward", "adjoint")),
            *(
                f"{ms_of(group='blur width', operator='kornia-reflect', width=w, map=m):.2f}{mark}"
                for m in ("forward", "adjoint")
            ),
            f"{width_ratios[f'{w}/forward']:.2f}, {width_ratios[f'{w}/adjoint']:.2f}",
        )
    console.print(table)
    table = Table(title="per-sample t vs one shared t (ms)")
    for col in ("operator", "map", "per-sample", "shared", "ratio"):
        table.add_column(col, justify="right")
    for name in ops:
        for m in ("forward", "adjoint"):
            table.add_row(
                name,
                m,
                *(f"{ms_of(group='time', operator=name, t=tn, map=m):.2f}" for tn in ("per-sample", "shared")),
                f"{time_ratios[f'{name}/{m}']:.2f}",
            )
    console.print(table)
    console.print(
        f"from minimum times: worst default/fastest-exact {max(width_ratios_min.values()):.2f}, "
        f"worst per-sample/shared {max(time_ratios_min.values()):.2f}"
    )
    console.print(
        f"worst default/fastest-exact: {max(width_ratios.values()):.2f} (target <= 1.5); "
        f"worst per-sample/shared: {max(time_ratios.values()):.2f} (target <= 1.2)"
    )

    metrics = {
        "rows": rows,
        "default_over_fastest_exact": width_ratios,
        "per_sample_over_shared": time_ratios,
        "from_min_times": {"default_over_fastest_exact": width_ratios_min, "per_sample_over_shared": time_ratios_min},
    }
    parameters = {"shape": SHAPE, "dtype": "float32", "repeats": args.repeats, "widths": WIDTHS}
    write_result(Result.now("speed", "operators", parameters, metrics, tag=args.tag), args.out)


if __name__ == "__main__":
    main()
