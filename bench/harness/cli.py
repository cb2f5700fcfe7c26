"""The command-line flags every benchmark shares: threads, tag, where to write."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_common(parser: argparse.ArgumentParser, threads: int | None = None) -> argparse.ArgumentParser:
    parser.add_argument(
        "--threads", type=int, default=threads, help="torch CPU threads (default: %(default)s; none = torch's choice)"
    )
    parser.add_argument("--tag", default=None, help="label a second configuration at the same commit")
    parser.add_argument(
        "--out", type=Path, default=None, help="result file (default: bench/results/KIND/BENCH-COMMIT[-TAG].json)"
    )
    return parser


def apply_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
