"""Every result file the harness wrote matches the ``Result`` schema and is named by its benchmark and commit.

The files directly in ``bench/results/`` predate the harness (most record no commit); they are
kept as they are because the docs cite their numbers, and this test pins that list so that no
new result lands outside the kind folders.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from bench.harness.result import KINDS, RESULTS, SCHEMA, Result, read_result, result_path

HARNESS = sorted(p for kind in KINDS for p in (RESULTS / kind).glob("*.json"))
LEGACY_COUNT = 51  # bench/results/*.json written before the harness; add none


def test_result_files_outside_the_kind_folders_are_only_the_legacy_ones() -> None:
    legacy = sorted(p.name for p in RESULTS.glob("*.json"))
    assert len(legacy) == LEGACY_COUNT, (
        f"{len(legacy)} files directly in bench/results/, expected the {LEGACY_COUNT} legacy ones: "
        "new results go to bench/results/<kind>/ through bench.harness.write_result"
    )
    assert not [p for p in RESULTS.rglob("*.json") if p.parent not in {RESULTS, *(RESULTS / k for k in KINDS)}]


def test_the_harness_has_written_results() -> None:
    assert HARNESS, "no harness result under bench/results/{speed,quality,oracle}/"


@pytest.mark.parametrize("path", HARNESS, ids=[str(p.relative_to(RESULTS)) for p in HARNESS])
def test_a_harness_result_matches_the_schema(path: Path) -> None:
    data = json.loads(path.read_text())
    assert set(data) == {f.name for f in fields(Result)}
    result = read_result(path)
    assert result.schema == SCHEMA
    assert result.kind == path.parent.name
    assert re.fullmatch(r"[0-9a-f]{7,40}|unknown", result.commit)
    assert isinstance(result.dirty, bool) and isinstance(result.threads, int) and result.threads >= 1
    assert result.command and result.torch and result.date
    assert {"cpu", "cores"} <= set(result.machine)
    assert len(result.load_average) == 3
    assert isinstance(result.parameters, dict) and isinstance(result.metrics, dict) and result.metrics
    assert path == result_path(result.kind, result.bench, result.commit, result.dirty, result.tag)
