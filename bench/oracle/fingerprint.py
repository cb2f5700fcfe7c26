"""Fingerprint short runs (weights and samples) to check that a refactor keeps behaviour bit-identical.

    PYTHONPATH=$PWD python3 -m bench.oracle.fingerprint          # writes bench/results/oracle/fingerprint-COMMIT.json
    PYTHONPATH=$PWD python3 -m bench.oracle.fingerprint --check bench/results/fingerprint-9381748.json

Each case trains 12 steps on synthetic 16×16 data with fixed seeds (one thread), then draws
8 samples with two samplers; the record is a SHA-256 per weight file's tensors (names and
bytes, not metadata) and per sample array. ``--check`` re-runs and lists every difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from bench.harness.result import Result, read_metrics, write_result

BASE = [
    "--dataset",
    "synthetic",
    "--image-size",
    "16",
    "--steps",
    "12",
    "--batch-size",
    "8",
    "--threads",
    "1",
    "--set",
    "train.select_levels=false",
    "--set",
    "train.check_operator=false",
]
CASES: dict[str, list[str]] = {
    "blur-default": ["--corruption", "blur"],
    "blurmask-default": ["--corruption", "blur+mask"],
    "noise-dsm": ["--corruption", "noise", "--objective", "dsm"],
    "mask-x0-residual": ["--corruption", "mask", "--objective", "x0", "--parameterisation", "residual"],
    "blur-dct-logit-balanced": [
        "--corruption",
        "blur",
        "--parameterisation",
        "precond_dct",
        "--weighting",
        "balanced",
        "--set",
        "objective.t_sampler=logitnormal",
    ],
    "motion-soft-below": ["--corruption", "motion", "--set", "objective.anchor_at=below"],
}
SAMPLERS = [["--sampler", "momentum", "--steps", "5"], ["--sampler", "dpmpp_2m_sde", "--steps", "5"]]


def _digest_tensors(path: Path) -> str:
    h = hashlib.sha256()
    for name, array in sorted(load_file(str(path)).items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _digest_npz(path: Path) -> str:
    h = hashlib.sha256()
    with np.load(path) as data:
        for name in sorted(data.files):
            if data[name].dtype.kind in "fiub":
                h.update(name.encode())
                h.update(np.ascontiguousarray(data[name]).tobytes())
    return h.hexdigest()


def run_case(name: str, flags: list[str], root: Path) -> dict[str, str]:
    run = root / name
    subprocess.run(
        [sys.executable, "-m", "softdiff", "train", *BASE, *flags, "--out", str(run)], check=True, capture_output=True
    )
    record: dict[str, str] = {}
    step = sorted((run / "checkpoints").glob("step-*"))[-1]
    for f in sorted(step.glob("*.safetensors")):
        record[f"weights/{f.stem}"] = _digest_tensors(f)
    for sflags in SAMPLERS:
        out = root / f"{name}-{sflags[1]}"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "softdiff",
                "sample",
                "--ckpt",
                str(run),
                *sflags,
                "-n",
                "8",
                "--out",
                str(out),
                "--threads",
                "1",
            ],
            check=True,
            capture_output=True,
        )
        record[f"samples/{sflags[1]}"] = _digest_npz(out / "samples.npz")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="result file (default: bench/results/oracle/fingerprint-COMMIT.json)")
    parser.add_argument("--check", type=Path, help="compare with this record (harness or legacy file); writes nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {name: run_case(name, flags, Path(tmp)) for name, flags in CASES.items()}
    if not args.check:
        parameters = {"base": BASE, "cases": CASES}
        write_result(Result.now("oracle", "fingerprint", parameters, result), args.out)
    else:
        want = read_metrics(args.check)
        diffs = [f"{c}/{k}" for c in want for k in want[c] if result.get(c, {}).get(k) != want[c][k]]
        print("identical" if not diffs else "differ: " + ", ".join(diffs))
        sys.exit(1 if diffs else 0)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
