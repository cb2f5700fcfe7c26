"""The speed targets stated in the docs, checked against the newest results (nothing is re-measured).

    PYTHONPATH=$PWD python -m bench check      # one line per target: PASS, FAIL or MISSING

Each target reads the newest harness result of its benchmark (``bench/results/speed/``,
untagged) and falls back to the legacy file the docs cite (``bench/results/*.json``, written
before the harness), marked ``legacy``. Round-robin ratios are read from minimum times, the estimate that
interference (which only adds time) disturbs least. The exit status is 1 if a target fails or has no result.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.harness.result import RESULTS, newest


@dataclass(frozen=True)
class Target:
    name: str
    doc: str  # where the docs state it
    bench: str  # harness benchmark name (kind speed)
    legacy: str  # the legacy result file the docs cite
    limit: float
    value: Callable[[dict[str, Any]], float]  # metrics (or a legacy file's content) -> measured value
    unit: str = ""


def _previews_share(m: dict[str, Any]) -> float:
    measured = m.get("main_job_measured")
    return measured["share"] if measured else m["main_job_projected"]["share_cpu_logged"]


TARGETS = (
    Target(
        "sampler wall time / (NFE x forward), worst sampler (1 + overhead/forward)",
        "docs/sampling.md",
        "sampler_overhead",
        "sampler_overhead.json",
        1.05,
        lambda m: max(r["ratio_from_parts"] for r in m["rows"]),
        "x",
    ),
    Target(
        "default blur / fastest exact blur path, worst width (minimum times)",
        "docs/operators.md",
        "operators",
        "operators.json",
        1.5,
        lambda m: max(m["from_min_times"]["default_over_fastest_exact"].values()),
        "x",
    ),
    Target(
        "per-sample t / one shared t, worst operator (minimum times)",
        "docs/operators.md",
        "operators",
        "operators.json",
        1.2,
        lambda m: max(m["from_min_times"]["per_sample_over_shared"].values()),
        "x",
    ),
    Target(
        "corruption + loss share of a training step",
        "docs/training.md",
        "train_step",
        "train_step.json",
        0.05,
        lambda m: m["corruption_plus_loss_share"],
    ),
    Target(
        "preview share of the main job's training loop",
        "docs/training.md",
        "previews",
        "previews.json",
        0.05,
        _previews_share,
    ),
    Target(
        "softdiff schedule on 2000 64x64x3 images, wall time",
        "docs/schedule.md",
        "schedule_scale",
        "schedule_scale.json",
        300.0,
        lambda m: m["wall_s"],
        " s",
    ),
)


def evaluate(target: Target) -> tuple[str, float | None, str]:
    """(PASS/FAIL/MISSING, value, where the value came from)."""
    result = newest("speed", target.bench)
    if result is not None:
        metrics, source = result.metrics, f"{target.bench} at {result.commit}{' (dirty)' if result.dirty else ''}"
    elif (RESULTS / target.legacy).is_file():
        metrics, source = json.loads((RESULTS / target.legacy).read_text()), f"legacy bench/results/{target.legacy}"
    else:
        return "MISSING", None, "no result"
    value = target.value(metrics)
    return ("PASS" if value <= target.limit else "FAIL"), value, source


def main(argv: list[str] | None = None) -> int:
    failed = 0
    for target in TARGETS:
        status, value, source = evaluate(target)
        failed += status != "PASS"
        shown = "-" if value is None else f"{value:.4g}{target.unit}"
        print(f"{status:7} {target.name}: {shown} (target <= {target.limit:g}{target.unit}; {target.doc}; {source})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
