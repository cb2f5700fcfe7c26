"""The benchmark harness: one result record and writer, one round-robin timer, one resumable runner."""

from bench.harness.result import Result, result_path, write_result
from bench.harness.runner import Runner
from bench.harness.timer import Timing, round_robin

__all__ = ["Result", "Runner", "Timing", "result_path", "round_robin", "write_result"]
