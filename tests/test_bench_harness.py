"""The benchmark harness: the round-robin timer, the resumable runner, the writer and ``bench check``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import check
from bench.harness import Result, Runner, round_robin, write_result
from bench.harness import result as result_module
from bench.harness import runner as runner_module
from bench.harness.result import read_metrics, read_result, result_path


def test_round_robin_interleaves_variants_and_skips_warmup_rounds() -> None:
    calls: list[str] = []
    timings = round_robin({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=1)
    assert calls == ["a", "b"] * 4  # one call of each per round, warm-up round first
    assert [len(t.wall) for t in timings.values()] == [3, 3]
    assert all(len(t.cpu) == 3 and t.min <= t.median for t in timings.values())


def test_round_robin_runs_before_each_call() -> None:
    seen: list[str] = []
    round_robin({"x": lambda: None, "y": lambda: None}, 2, warmup=0, before=seen.append)
    assert seen == ["x", "y", "x", "y"]


def test_runner_skips_finished_cases_and_resumes_from_its_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(result_module, "RESULTS", tmp_path)
    monkeypatch.setattr(runner_module, "commit", lambda: ("abc1234", False))
    monkeypatch.setattr(result_module, "commit", lambda: ("abc1234", False))
    measured: list[int] = []

    def measure(n: int):  # noqa: ANN202
        return lambda: measured.append(n) or {"value": n * n}

    runner = Runner("oracle", "toy", {"size": 6}, log=lambda _: None)
    assert runner.run({"n": 2}, measure(2)) == {"value": 4}
    again = Runner("oracle", "toy", {"size": 6}, log=lambda _: None)  # a rerun reads the same result
    assert again.out == tmp_path / "oracle" / "toy-abc1234.json"
    assert again.done({"n": 2}) and not again.done({"n": 3})
    assert again.run({"n": 2}, measure(2)) == {"value": 4}
    assert again.run({"n": 3}, measure(3)) == {"value": 9}
    assert measured == [2, 3]  # the finished case was not measured twice
    again.save(floor=0.5)
    stored = read_result(again.out)
    assert stored.parameters == {"size": 6} and stored.metrics["floor"] == 0.5
    assert sorted(r["n"] for r in Runner("oracle", "toy", {}, log=lambda _: None).rows()) == [2, 3]


def test_write_result_names_the_file_by_benchmark_and_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(result_module, "RESULTS", tmp_path)
    monkeypatch.setattr(result_module, "commit", lambda: ("abc1234", False))
    result = Result.now("speed", "toy", {"batch": 4}, {"ms": 1.5}, tag="small")
    path = write_result(result)
    assert path == tmp_path / "speed" / "toy-abc1234-small.json"
    assert path == result_path("speed", "toy", "abc1234", False, "small")
    back = read_result(path)
    assert back == result and back.metrics == {"ms": 1.5} and back.machine["cores"]
    assert read_metrics(path) == {"ms": 1.5}
    with pytest.raises(ValueError, match="kind"):
        Result.now("fast", "toy", {}, {})


def test_a_dirty_tree_gets_its_own_file() -> None:
    assert result_path("speed", "toy", "abc1234", True).name == "toy-abc1234-dirty.json"


def test_check_reads_the_newest_harness_result_before_the_legacy_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(result_module, "RESULTS", tmp_path)
    monkeypatch.setattr(check, "RESULTS", tmp_path)
    monkeypatch.setattr(result_module, "commit", lambda: ("abc1234", False))
    target = next(t for t in check.TARGETS if t.bench == "train_step")
    assert check.evaluate(target)[0] == "MISSING"
    (tmp_path / target.legacy).write_text(json.dumps({"corruption_plus_loss_share": 0.5}))
    assert check.evaluate(target)[:2] == ("FAIL", 0.5)
    write_result(Result.now("speed", "train_step", {}, {"corruption_plus_loss_share": 0.01}))
    status, value, source = check.evaluate(target)
    assert (status, value) == ("PASS", 0.01) and "abc1234" in source
    assert check.main() == 1  # the other targets have no result here
    assert "PASS    corruption + loss share" in capsys.readouterr().out


def test_check_finds_a_result_for_every_documented_target() -> None:
    statuses = {t.name: check.evaluate(t)[0] for t in check.TARGETS}
    assert "MISSING" not in statuses.values(), statuses


def test_python_m_bench_check_prints_one_line_per_target() -> None:
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "bench", "check"], cwd=root, env=env, capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert len(lines) == len(check.TARGETS)
    assert all(line.split()[0] in {"PASS", "FAIL", "MISSING"} for line in lines)
    assert done.returncode == (0 if all(line.startswith("PASS") for line in lines) else 1)
    wrong = subprocess.run([sys.executable, "-m", "bench"], cwd=root, env=env, capture_output=True, text=True)
    assert wrong.returncode == 2 and "usage" in wrong.stderr
