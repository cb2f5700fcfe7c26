"""Data-parallel scaling: training images/s for 1 process vs N processes under torchrun.

Each case runs ``softdiff train`` through ``python -m torch.distributed.run --standalone``
with the same *global* batch (strong scaling: N ranks of ``global / N`` images each), on
the default 16-channel U-Net, and reads images/s from the run's metrics.jsonl (the
median over logging windows, the first window dropped as warm-up). Start-up time is not
counted. Cases (``--cases``):

* ``1x1``: one process, 1 thread (the unit of work each rank gets below)
* ``1xT``: one process, T threads (``--threads``, default: all cores the cases share)
* ``Nx1``: N processes of 1 thread each (torchrun's default OMP_NUM_THREADS=1), gloo

    PYTHONPATH=$PWD python bench/speed/distributed.py --cases 1x1,1x2,2x1 --steps 40
    PYTHONPATH=$PWD python bench/speed/distributed.py --device cuda --cases 1x1 --amp --compile

Prints a table and writes ``bench/results/speed/distributed-COMMIT.json`` (or ``--out``); a rerun at the
same commit skips the cases it has already measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import Runner

ROOT = Path(__file__).resolve().parents[2]


def run_case(procs: int, threads: int, args: argparse.Namespace, folder: Path) -> dict:
    """One training run; images/s over its steady-state logging windows."""
    out = folder / f"{procs}x{threads}"
    if args.global_batch % procs:
        raise ValueError(f"the global batch {args.global_batch} does not split over {procs} processes")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
        "-m", "softdiff", "train", "--dataset", args.dataset, "--steps", str(args.steps),
        "--batch-size", str(args.global_batch // procs), "--device", args.device, "--threads", str(threads),
        "--set", f"train.log_every={args.log_every}", "--set", f"train.ckpt_every={args.steps}",
        "--no-progress", "--out", str(out),
    ]  # fmt: skip
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    cmd += ["--amp"] if args.amp else []
    cmd += ["--compile"] if args.compile else []
    cmd += ["--channels-last"] if args.channels_last else []
    path = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": path}
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"case {procs}x{threads} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in records[1:]] or [records[0]["images_per_s"]]
    return {
        "processes": procs,
        "threads_per_process": threads,
        "batch_per_process": args.global_batch // procs,
        "images_per_s": statistics.median(rates),
        "images_per_s_windows": rates,
        "final_loss": records[-1]["loss"],
        "wall_s_with_startup": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="1x1,1x2,2x1", help="PROCSxTHREADS, comma separated")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--tag", default=None, help="label a second configuration at the same commit")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/speed/distributed-COMMIT.json")
    args = parser.parse_args()
    sweep = {k: v for k, v in vars(args).items() if k not in ("cases", "out", "tag")}
    runner = Runner("speed", "distributed", sweep, out=args.out, tag=args.tag)  # a rerun skips finished cases

    cases = [tuple(int(v) for v in case.split("x")) for case in args.cases.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for procs, threads in cases:
            case = {"processes": procs, "threads_per_process": threads}
            rows.append(
                runner.run(case, lambda procs=procs, threads=threads: run_case(procs, threads, args, Path(tmp)))
            )
            r = rows[-1]
            print(f"{procs} proc x {threads} thread(s), batch {r['batch_per_process']}/proc: "
                  f"{r['images_per_s']:8.1f} images/s (loss {r['final_loss']:.4f})", flush=True)  # fmt: skip
    base = rows[0]["images_per_s"]
    for r in rows:
        r["speedup_vs_first"] = r["images_per_s"] / base
    print(f"\n{'case':>8} {'images/s':>10} {'vs ' + args.cases.split(',')[0]:>10}")
    for r in rows:
        case = f"{r['processes']}x{r['threads_per_process']}"
        print(f"{case:>8} {r['images_per_s']:10.1f} {r['speedup_vs_first']:10.2f}")
    what = "training images/s, same global batch, 1 process vs N under torchrun (median of log windows)"
    runner.save(what=what, order=args.cases, rows=rows)


if __name__ == "__main__":
    main()
