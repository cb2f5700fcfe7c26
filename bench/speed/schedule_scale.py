"""Time ``softdiff schedule -k 32`` on a synthetic folder of colour photos at the paper's size (64x64x3).

Usage: ``PYTHONPATH=$PWD python bench/speed/schedule_scale.py [--images 2000] [--size 64] [--threads 1]
[--candidates 256]``.

The folder holds smooth random colour fields (a 4x4 and a 16x16 random RGB field, resized
bicubically and mixed), so its spectrum falls off like a photo's rather than white noise's.
The command runs in a child process, so its wall time, CPU time (user + system) and peak
memory are its own; the machine's load average is recorded before and after, since these
2 cores are shared. Results go to ``bench/results/schedule_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from bench.harness import Result, write_result

ROOT = Path(__file__).resolve().parents[2]


def make_colour_folder(folder: Path, n: int, size: int, seed: int = 0) -> Path:
    """``n`` PNGs of ``size x size`` smooth random colour fields (deterministic in ``seed``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        fields = []
        for side in (4, 16):
            coarse = (rng.random((side, side, 3)) * 255).astype(np.uint8)
            fields.append(np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float64))
        picture = np.clip(0.75 * fields[0] + 0.25 * fields[1], 0, 255).astype(np.uint8)
        Image.fromarray(picture).save(folder / f"{i:05d}.png")
    return folder


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_schedule(folder: Path, out: Path, args: argparse.Namespace) -> dict[str, object]:
    """Run the command in a child; its wall, CPU time and peak RSS, and what it wrote."""
    command = [
        *("schedule", "--dataset", "folder", "--data-dir", str(folder), "--image-size", str(args.size)),
        *("--channels", "3", "-k", str(args.k), "--candidates", str(args.candidates)),
        *("--threads", str(args.threads), "--out", str(out)),
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "softdiff", *command], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"softdiff schedule failed ({done.returncode}):\n{done.stderr[-2000:]}")
    table = json.loads(out.read_text())
    return {
        "command": "softdiff " + " ".join(command),
        "wall_s": round(wall, 1),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "peak_rss_mib": round(after.ru_maxrss / 1024),  # Linux: KiB; the largest child so far
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "pairs_computed": table["pairs_computed"],
        "epsilon": table["epsilon"],
        "projection": table["projection"],
        "blur_sigma": [table["strengths"]["blur_sigma"][i] for i in (0, 1, -2, -1)],
        "t": table["t"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("-k", type=int, default=32)
    parser.add_argument("--candidates", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="where to write the JSON results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_colour_folder(Path(tmp) / "photos", args.images, args.size)
        result = run_schedule(folder, Path(tmp) / "levels.json", args)
    record = {
        "benchmark": "schedule_scale",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "threads": args.threads,
        "images": args.images,
        "shape": [3, args.size, args.size],
        "k": args.k,
        "candidates": args.candidates,
        **result,
    }
    write_result(Result.now("speed", "schedule_scale", dict(vars(args)), record), args.out)
    print(json.dumps({k: v for k, v in record.items() if k != "t"}, indent=2))


if __name__ == "__main__":
    main()
