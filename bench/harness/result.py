"""One result record for every benchmark, and the one writer.

A result file is ``bench/results/<kind>/<bench>-<commit>[-dirty][-<tag>].json``: the benchmark,
the commit it measured (``-dirty`` when the work tree had changes) and, for a second
configuration of the same benchmark at the same commit, a tag. What was measured is in
``parameters``; the name is only a label.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).parents[1]
ROOT = BENCH.parent
RESULTS = BENCH / "results"
KINDS = ("speed", "quality", "oracle")
SCHEMA = 1


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def commit() -> tuple[str, bool]:
    """(short commit hash, whether tracked files differ from it); ``("unknown", True)`` outside git.

    Read once per process, when the harness is imported (below), so a commit made while a long
    benchmark runs does not relabel what it measured.
    """
    head = _git("rev-parse", "--short=7", "HEAD")
    if head is None:
        return "unknown", True
    return head, bool(_git("status", "--porcelain", "--untracked-files=no", "--", "softdiff", "bench"))


commit()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpu": gpu,
    }


@dataclass
class Result:
    """What a benchmark measured and everything needed to judge it later."""

    kind: str
    bench: str
    commit: str
    dirty: bool
    command: str
    machine: dict[str, Any]
    torch: str
    threads: int
    load_average: list[float]
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    date: str = ""
    tag: str | None = None
    schema: int = SCHEMA
    notes: list[str] = field(default_factory=list)

    @classmethod
    def now(
        cls,
        kind: str,
        bench: str,
        parameters: dict[str, Any],
        metrics: dict[str, Any],
        *,
        tag: str | None = None,
        notes: list[str] | None = None,
    ) -> Result:
        import torch

        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        head, dirty = commit()
        return cls(
            kind=kind,
            bench=bench,
            commit=head,
            dirty=dirty,
            command=shlex.join([Path(sys.executable).name, *sys.argv]),
            machine=machine(),
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            load_average=[round(x, 2) for x in os.getloadavg()],
            parameters=parameters,
            metrics=metrics,
            date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            tag=tag,
            notes=list(notes or []),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str) + "\n"


def result_path(kind: str, bench: str, commit: str, dirty: bool, tag: str | None = None) -> Path:
    name = "-".join([bench, commit, *(["dirty"] if dirty else []), *([tag] if tag else [])])
    return RESULTS / kind / f"{name}.json"


def write_result(result: Result, out: Path | None = None) -> Path:
    """Write ``result`` atomically to ``out`` or its standard path; returns the path."""
    path = out or result_path(result.kind, result.bench, result.commit, result.dirty, result.tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(result.to_json())
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path


def read_result(path: Path) -> Result:
    """A harness result file back as a ``Result``; raises on a missing or unknown field."""
    data = json.loads(Path(path).read_text())
    return Result(**data)


def read_metrics(path: Path) -> dict[str, Any]:
    """The metrics of a harness result, or the whole content of a legacy (pre-harness) result file."""
    data = json.loads(Path(path).read_text())
    return data["metrics"] if "schema" in data and "metrics" in data else data


def newest(kind: str, bench: str, tag: str | None = None) -> Result | None:
    """The most recently dated harness result of ``bench`` (``None`` if it has none)."""
    found = [read_result(p) for p in sorted((RESULTS / kind).glob(f"{bench}-*.json"))]
    found = [r for r in found if r.bench == bench and r.tag == tag]
    return max(found, key=lambda r: r.date, default=None)
