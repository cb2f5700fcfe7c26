"""The recipe search of issue 10: many short runs, one table of FID by objective, weighting and sampler.

What it measures: each line of the plan (``bench/quality/recipes/search.tsv``: ``NAME<TAB>softdiff
train flags``) is one training run on Fashion-MNIST (1200 steps of batch 64 unless its flags
say otherwise, one thread), then ``softdiff eval`` of its EMA weights with each sampler at
``--steps`` (default 20 network calls), ``-n`` images (default 1000), seed 0, domain
features. The table shows what each run was *actually* trained with (read back from its
``config.json``, not from the plan), its training wall time and images seen, and its FIDs.

Everything resumes: a run with a ``DONE`` marker is not retrained, an interrupted one
continues from its checkpoint, and finished cells are reused from ``RUN/eval/eval.json``.
``--collect`` skips training and evaluation and only tabulates what exists (missing runs
and cells are listed as such, never filled in).

    PYTHONPATH=$PWD nohup python bench/quality/recipe_search.py --runs /work/runs/exp > /work/logs/search.log 2>&1 &
    PYTHONPATH=$PWD python bench/quality/recipe_search.py --runs /work/runs/exp --collect   # the table only
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.quality._eval_common import RESULTS, console, write

ROOT = Path(__file__).resolve().parents[2]
PLAN = Path(__file__).parent / "recipes" / "search.tsv"
LEVELS = ROOT / "docs" / "levels-blur-fashion-mnist.json"


def read_plan(path: Path) -> list[tuple[str, list[str]]]:
    """``NAME<TAB>flags`` lines (``#`` comments skipped); ``LEVELS`` becomes the main job's level file."""
    plan = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, flags = line.partition("\t")
        if not sep:
            raise ValueError(f"{path}: expected NAME<TAB>flags, got {line!r}")
        plan.append((name.strip(), [str(LEVELS) if f == "LEVELS" else f for f in shlex.split(flags)]))
    return plan


def train_and_eval(name: str, flags: list[str], out: Path, args: argparse.Namespace) -> None:
    """Train (resuming) unless ``out/DONE`` exists, then evaluate the cells that are missing."""
    softdiff = [sys.executable, "-m", "softdiff"]
    if not (out / "DONE").exists():
        resume = ["--resume"] if (out / "latest").exists() else []
        command = [*softdiff, "train", "--out", str(out), "--no-progress", "--threads", str(args.threads), *resume]
        console.print(f"{name}: {shlex.join([*command, *flags])}", highlight=False, markup=False)
        subprocess.run([*command, *flags], check=True)
        (out / "DONE").touch()
    command = [*softdiff, "eval", "--ckpt", str(out), "--sampler", args.samplers, "--steps", str(args.steps)]
    command += ["-n", str(args.n), "--seed", "0", "--device", "cpu", "--no-progress"]
    subprocess.run(command, check=True)


def describe(name: str, flags: list[str], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One table row: the config as trained, the training cost, the FID of each sampler (None if missing)."""
    row: dict[str, Any] = {"name": name, "flags": shlex.join(flags), "run": str(out)}
    config_path, metrics_path = out / "config.json", out / "metrics.jsonl"
    if not config_path.is_file() or not (out / "DONE").exists():
        return {**row, "status": "not trained"}
    config = json.loads(config_path.read_text())
    objective, optim, corruption = config["objective"], config["optim"], config["corruption"]
    lines = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
    row.update(
        status="done",
        spec=corruption["spec"],
        s_max=corruption["noise"].get("s_max"),
        levels=bool(corruption.get("levels")),
        objective=objective["name"],
        parameterisation=objective.get("parameterisation", "residual"),
        weighting=objective.get("weighting", "uniform"),
        anchor=objective.get("anchor", 0.0),
        t_sampler=objective.get("t_sampler", "uniform"),
        lr=optim["lr"],
        lr_decay=optim.get("lr_decay", "constant"),
        ema=optim.get("ema_decay") or f"half-life {optim.get('ema_halflife')} img, rampup {optim.get('ema_rampup')}",
        batch=config["train"]["batch_size"],
        seed=config["train"]["seed"],
        network=network(config["model"]),
        steps=lines[-1]["step"] if lines else None,
        images=lines[-1]["step"] * config["train"]["batch_size"] if lines else None,
        train_seconds=lines[-1].get("elapsed_s") if lines else None,
    )
    stored = out / "eval" / "eval.json"
    cells = json.loads(stored.read_text())["results"] if stored.exists() else []
    fid: dict[str, float | None] = {}
    for sampler in args.samplers.split(","):
        match = [
            c for c in cells
            if c["sampler"] == sampler and c["steps"] == args.steps and c["n"] == args.n and c["seed"] == 0
            and c.get("grid", "uniform") == "uniform" and c["checkpoint_step"] == row["steps"]
        ]  # fmt: skip
        fid[sampler] = match[-1]["fid"] if match else None
    return {**row, "fid": fid}


def network(model: dict[str, Any]) -> str:
    """``16 (1,2,2)``: base channels and per-level multipliers, plus the residual blocks per level when not 1."""
    mults = ",".join(str(m) for m in model["channel_mults"])
    blocks = model.get("num_res_blocks", 1)
    return f"{model['base_channels']} ({mults})" + ("" if blocks == 1 else f" x{blocks}")


def table(rows: list[dict[str, Any]], samplers: list[str], steps: int, n: int) -> Table:
    out = Table(title=f"recipe search: FID at {steps} NFE, n = {n}, domain features (lower is better)")
    for column in ("run", "objective", "param.", "weighting", "anchor", "t", "EMA", "LR", "network", "seed", "images"):
        out.add_column(column)
    for sampler in samplers:
        out.add_column(sampler, justify="right")
    for r in rows:
        if r["status"] != "done":
            out.add_row(r["name"], r["status"], *[""] * (9 + len(samplers)))
            continue
        ema = str(r["ema"]) if isinstance(r["ema"], float) else "half-life"
        lr = f"{r['lr']:g}" + ("" if r["lr_decay"] == "constant" else f" {r['lr_decay']}")
        fids = [f"{r['fid'][s]:.1f}" if r["fid"][s] is not None else "-" for s in samplers]
        out.add_row(
            f"{r['name']} ({r['spec']})", r["objective"], r["parameterisation"], r["weighting"], f"{r['anchor']:g}",
            r["t_sampler"], ema, lr, r["network"], str(r["seed"]), f"{r['images']:,}", *fids,
        )  # fmt: skip
    return out


def markdown(rows: list[dict[str, Any]], samplers: list[str]) -> str:
    """The table as Markdown, for docs/benchmarks.md (one line per run, as trained)."""
    head = ["run", "process", "objective", "param.", "weighting", "anchor", "t-sampler", "EMA", "LR", "network"]
    head += ["seed", "images", *samplers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 10 + "---:|" * (2 + len(samplers))]
    for r in rows:
        if r["status"] != "done":
            lines.append(f"| {r['name']} | {r['status']} |" + " |" * (len(head) - 2))
            continue
        process = r["spec"] + (" (levels)" if r["levels"] else "") + (f", s_max {r['s_max']:g}" if r["s_max"] else "")
        ema = f"{r['ema']:g}" if isinstance(r["ema"], float) else "half-life"
        lr = f"{r['lr']:g}" + ("" if r["lr_decay"] == "constant" else f" {r['lr_decay']}")
        lr += "" if r["batch"] == 64 else f", batch {r['batch']}"
        fids = [f"{r['fid'][s]:.1f}" if r["fid"][s] is not None else "-" for s in samplers]
        cells = [r["name"], process, r["objective"], r["parameterisation"], r["weighting"], f"{r['anchor']:g}"]
        cells += [r["t_sampler"], ema, lr, r["network"], str(r["seed"]), f"{r['images']:,}"]
        lines.append("| " + " | ".join([*cells, *fids]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, default=PLAN)
    parser.add_argument("--runs", type=Path, default=Path("/work/runs/exp"))
    parser.add_argument("--only", default=None, help="comma list of plan names (default: all)")
    parser.add_argument("--samplers", default="momentum,naive,euler")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--collect", action="store_true", help="only tabulate existing runs and cells")
    parser.add_argument("--out", type=Path, default=RESULTS / "recipe_search.json")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = parser.parse_args()
    plan = read_plan(args.plan)
    if args.only:
        keep = set(args.only.split(","))
        plan = [(name, flags) for name, flags in plan if name in keep]
    start = time.perf_counter()
    if not args.collect:
        for name, flags in plan:
            train_and_eval(name, flags, args.runs / name, args)
    rows = [describe(name, flags, args.runs / name, args) for name, flags in plan]
    samplers = args.samplers.split(",")
    console.print(table(rows, samplers, args.steps, args.n))
    if args.markdown:
        print(markdown(rows, samplers))
    write("recipe_search", {
        "benchmark": "recipe_search", "command": shlex.join(
            ["python", "bench/quality/recipe_search.py", *sys.argv[1:]]
        ),
        "plan": str(args.plan), "steps": args.steps, "n": args.n, "seed": 0, "features": "fashion",
        "wall_seconds": time.perf_counter() - start, "rows": rows,
    }, args.out, args=args)  # fmt: skip


if __name__ == "__main__":
    main()
