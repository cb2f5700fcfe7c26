"""The one resumable runner: cases keyed by their parameters, a rerun skips finished ones.

The store is one JSON file ``{"cases": {key: {"parameters": ..., "metrics": ...}}}``, written
atomically after every case, so an interrupted sweep resumes where it stopped. A case's key
is its parameters as canonical JSON, so a changed parameter is a new case, never a stale hit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def case_key(parameters: dict[str, Any]) -> str:
    return json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)


class Runner:
    def __init__(self, store: Path, log: Callable[[str], None] = print) -> None:
        self.store = Path(store)
        self.log = log
        self.cases: dict[str, dict[str, Any]] = {}
        if self.store.is_file():
            self.cases = json.loads(self.store.read_text())["cases"]

    def done(self, parameters: dict[str, Any]) -> bool:
        return case_key(parameters) in self.cases

    def run(self, parameters: dict[str, Any], measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``measure()``'s metrics for ``parameters``: stored ones if finished, else measured and saved."""
        key = case_key(parameters)
        if key in self.cases:
            self.log(f"done already: {key}")
            return self.cases[key]["metrics"]
        metrics = measure()
        self.cases[key] = {"parameters": parameters, "metrics": metrics}
        self.save()
        return metrics

    def save(self) -> None:
        self.store.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.store.with_name(self.store.name + ".tmp")
        tmp.write_text(json.dumps({"cases": self.cases}, indent=2, default=str) + "\n")
        os.replace(tmp, self.store)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.cases.values())

    def rows(self) -> list[dict[str, Any]]:
        """Every finished case as one flat row: parameters then metrics."""
        return [{**c["parameters"], **c["metrics"]} for c in self.cases.values()]
