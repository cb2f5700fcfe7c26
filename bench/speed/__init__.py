"""Speed benchmarks: wall time and throughput, timed with the harness's round-robin timer."""
