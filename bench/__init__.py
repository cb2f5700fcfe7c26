"""Benchmarks by kind (speed, quality, oracle) on one harness; see docs/benchmarks.md#running-the-benchmarks."""
