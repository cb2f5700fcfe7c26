"""The one resumable runner: cases keyed by their parameters, a rerun skips finished ones.

The store is the benchmark's own harness result (``metrics["cases"]``, one entry per case with
its parameters and metrics), rewritten through the one writer after every case, so an
interrupted sweep resumes where it stopped and its partial file already matches the schema.
A case's key is its parameters as canonical JSON: a changed parameter is a new case, never a
stale hit. The sweep's shared parameters are the result's ``parameters``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness.result import Result, commit, read_result, result_path, write_result


def case_key(parameters: dict[str, Any]) -> str:
    return json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)


class Runner:
    def __init__(
        self,
        kind: str,
        bench: str,
        parameters: dict[str, Any],
        *,
        out: Path | None = None,
        tag: str | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.kind, self.bench, self.parameters, self.tag, self.log = kind, bench, parameters, tag, log
        self.out = Path(out) if out is not None else result_path(kind, bench, *commit(), tag)
        self.cases: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}
        if self.out.is_file():
            self.cases = read_result(self.out).metrics.get("cases", {})

    def done(self, parameters: dict[str, Any]) -> bool:
        return case_key(parameters) in self.cases

    def run(self, parameters: dict[str, Any], measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``measure()``'s metrics for ``parameters``: the stored ones if finished, else measured and saved."""
        key = case_key(parameters)
        if key in self.cases:
            self.log(f"done already: {key}")
            return self.cases[key]["metrics"]
        metrics = measure()
        self.cases[key] = {"parameters": parameters, "metrics": metrics}
        self.save()
        return metrics

    def rows(self) -> list[dict[str, Any]]:
        """Every finished case as one flat row: its parameters, then its metrics."""
        return [{**c["parameters"], **c["metrics"]} for c in self.cases.values()]

    def save(self, **metrics: Any) -> Path:
        """Write the result: the cases plus any sweep-level ``metrics`` (kept for later saves)."""
        self.extra |= metrics
        result = Result.now(self.kind, self.bench, self.parameters, {**self.extra, "cases": self.cases}, tag=self.tag)
        return write_result(result, self.out)
