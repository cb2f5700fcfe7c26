"""``softdiff eval`` on a class-conditional run, recorded as a harness result: FID/KID and accuracy against guidance.

Runs the CLI (so the numbers are exactly what a user gets), then stores its guidance.json
(every cell, the real test images' per-class accuracy) with the command that made it.

    PYTHONPATH=$PWD python3 -m bench.quality.cond_eval /work/runs/cond2 --sampler naive,dpmpp_2m_sde --steps 20 \\
        -n 1000 --guidance 0,1,2,4 --threads 1 --tag class-prior
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from bench.harness import Result, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--sampler", default="naive,dpmpp_2m_sde")
    parser.add_argument("--steps", default="20")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--guidance", default="0,1,2,4")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default=None)
    args = parser.parse_args()
    out = args.run / "eval"
    command = [sys.executable, "-m", "softdiff", "eval", "--ckpt", str(args.run), "--sampler", args.sampler]
    command += ["--steps", args.steps, "-n", str(args.n), "--guidance", args.guidance, "--threads", str(args.threads)]
    command += ["--no-progress", "--out", str(out)]
    subprocess.run(command, check=True)
    record = json.loads((out / "guidance.json").read_text())
    parameters = {"run": str(args.run), "eval_command": shlex.join(command), "n": args.n, "threads": args.threads}
    path = write_result(Result.now("quality", "cond_eval", parameters, record, tag=args.tag), None)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
