"""``bench/oracle/faults.py`` as a slow test: a few kill, SIGTERM, divergence and fuzz trials through the CLI.

Skipped by default (minutes of CPU); run with ``-m slow`` or ``SOFTDIFF_SLOW_BENCH=1``. The full
fault runs (20 kills, 5 SIGTERMs) stay a script: ``python -m bench.oracle.faults``.
"""

from __future__ import annotations

import os

import pytest

from bench.oracle import faults

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _only_when_asked(request: pytest.FixtureRequest) -> None:
    if not (os.environ.get("SOFTDIFF_SLOW_BENCH") or "slow" in (request.config.getoption("markexpr") or "")):
        pytest.skip("fault runs take minutes: -m slow or SOFTDIFF_SLOW_BENCH=1")


def test_every_malformed_invocation_is_refused_as_expected() -> None:
    fuzz = faults.run(["fuzz"])["fuzz"]
    assert fuzz["invocations"] > 0
    assert fuzz["as_expected"] == fuzz["invocations"], fuzz


def test_a_killed_or_terminated_run_resumes_to_the_same_loss_curve() -> None:
    results = faults.run(["kill", "sigterm"], kills=2, sigterms=1, seed=0)
    summary = results["summary"]
    assert summary["kill"]["completed"] == summary["kill"]["trials"] == 2
    assert summary["kill"]["curve_equal"] == 2
    assert summary["sigterm"] == {
        "trials": 1,
        "exit_143": 1,
        "checkpoint_at_reported_step": 1,
        "completed": 1,
        "curve_equal": 1,
    }


def test_a_diverging_run_stops_with_one_error_line_and_a_loadable_checkpoint() -> None:
    diverge = faults.run(["diverge"])["diverge"]
    assert diverge["exit_code"] == 2
    assert len(diverge["error_lines"]) == 1
    assert not diverge["traceback"]
    assert diverge["latest_checkpoint_loads"]
