"""The defaults benchmark: every built-in corruption trained and sampled with no flag but its name.

What a new user gets from ``softdiff train --corruption C`` and ``softdiff sample``: one run
per corruption with every default (1200 steps of batch 64, the main job's budget; one
thread), then ``softdiff eval`` of its EMA weights with every registered sampler at about 10
and 20 network calls (Heun at 5 and 10 steps: 9 and 19), ``-n`` images (default 1000), seed
0, domain features. Beside each corruption stands the best recipe measured for it before
(read from ``bench/results``, never typed in), and the ratio of the best default cell to it.
One 8x8 grid per corruption, from the sampler that ``softdiff sample`` picks by default for
that run (20 network calls), goes to ``--grids`` (default ``docs/img``).

Everything resumes: a run with a ``DONE`` marker is not retrained, an interrupted one
continues from its checkpoint, and finished cells come back from ``RUN/eval/eval.json``.
``--collect`` only tabulates what exists.

    PYTHONPATH=$PWD nohup python bench/quality/defaults.py --runs /work/runs/defaults --jobs 2 \
        > /work/logs/defaults.log 2>&1 &
    PYTHONPATH=$PWD python bench/quality/defaults.py --runs /work/runs/defaults --collect   # table + grids only
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.quality._eval_common import RESULTS, console, loop_seconds, write
from softdiff.samplers import names

ROOT = Path(__file__).resolve().parents[2]
CORRUPTIONS = ["noise", "blur", "mask", "blur+mask", "motion", "strokes", "desaturate", "pixelate", "fademean"]
# Desaturation leaves grey images alone: on Fashion-MNIST it is C = I with the blur's small noise.
NOT_ON_GREY = {"desaturate": "the identity on grey images (C_t x = x for one channel): nothing to learn to undo"}
# Best recipes measured earlier, by (results file, run name or cell filter); their FID is read from the file.
KNOWN = {
    "blur": ("eval-main-job.json", "x0 objective, selected levels (the old `make run`)"),
    "mask": ("recipe_search.json:mask-x0-s2", "x0 objective, s_max 2 (Gaussian prior)"),
    "blur+mask": ("recipe_search.json:bm-x0-s2", "x0 objective, s_max 2 (Gaussian prior)"),
    "noise": ("recipe_search.json:vanilla-pc-norm-ln", "x0, normalised weighting, log-normal t (Gaussian prior)"),
    # The same budget and defaults with `--objective x0` (this script with `-- --objective x0`).
    **{
        spec: (f"quality/defaults-7efcfa8-dirty-x0-recipes.json:{spec}", "x0 objective, every other default")
        for spec in ("motion", "strokes", "pixelate", "fademean")
    },
}
TARGET_NFE = (10, 20)


def steps_for(sampler: str) -> list[int]:
    """Step counts whose NFE is at most 10 and 20 (Heun spends 2 calls per step but the last)."""
    return [(k + 1) // 2 for k in TARGET_NFE] if sampler == "heun" else list(TARGET_NFE)


def softdiff(*args: str) -> list[str]:
    return [sys.executable, "-m", "softdiff", *args]


def train_and_eval(spec: str, runs: Path, args: argparse.Namespace) -> None:
    out = runs / spec.replace("+", "-")
    if spec in NOT_ON_GREY:
        return
    if not (out / "DONE").exists():
        command = softdiff("train", "--corruption", spec, "--out", str(out), "--resume", "--no-progress")
        command += ["--threads", str(args.threads), *args.train_flags]
        console.print(shlex.join(command), highlight=False, markup=False)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        (out / "DONE").touch()
    refused = {}
    for sampler in args.samplers:
        command = softdiff(
            "eval", "--ckpt", str(out), "--sampler", sampler, "--steps", ",".join(map(str, steps_for(sampler)))
        )
        command += [
            "-n",
            str(args.n),
            "--seed",
            "0",
            "--device",
            "cpu",
            "--no-progress",
            "--threads",
            str(args.threads),
        ]
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode == 2:  # a one-line refusal: this sampler cannot run this operator (e.g. ancestral)
            refused[sampler] = done.stderr.strip().splitlines()[-1]
        elif done.returncode:
            raise RuntimeError(f"{shlex.join(command)} failed: {done.stderr[-2000:]}")
    (out / "refused.json").write_text(json.dumps(refused, indent=2) + "\n")
    default_grid(out, args)


def default_grid(out: Path, args: argparse.Namespace) -> None:
    """64 samples with no --sampler (what a user gets), 20 steps, unless they exist."""
    grid = out / "samples-default"
    if (out / "DONE").exists() and not (grid / "grid.png").exists():
        command = softdiff("sample", "--ckpt", str(out), "--steps", "20", "-n", "64", "--out", str(grid))
        subprocess.run(
            [*command, "--no-progress", "--threads", str(args.threads)], check=True, stdout=subprocess.DEVNULL
        )


def known_recipe(spec: str) -> dict[str, Any] | None:
    """The best earlier cell for ``spec`` at 10 or 20 NFE, from its results file."""
    if spec not in KNOWN:
        return None
    source, what = KNOWN[spec]
    name, _, run = source.partition(":")
    data = json.loads((RESULTS / name).read_text())
    data = data.get("metrics", data)  # a harness Result keeps the table under "metrics"
    if run and "corruption" in data["rows"][0]:  # a table written by this script (with other train flags)
        best = next(r for r in data["rows"] if r["corruption"] == run)["best"]
        return {"recipe": what, "source": source, "sampler": best["sampler"], "nfe": best["nfe"], "fid": best["fid"]}
    if run:
        row = next(r for r in data["rows"] if r["name"] == run)
        sampler, fid = min(row["fid"].items(), key=lambda kv: kv[1])
        return {"recipe": what, "source": source, "sampler": sampler, "nfe": data["steps"], "fid": fid}
    cells = [r for r in data["results"] if r["nfe"] in TARGET_NFE]
    best = min(cells, key=lambda r: r["fid"])
    return {"recipe": what, "source": source, "sampler": best["sampler"], "nfe": best["nfe"], "fid": best["fid"]}


def describe(spec: str, runs: Path, n: int) -> dict[str, Any]:
    out = runs / spec.replace("+", "-")
    row: dict[str, Any] = {"corruption": spec, "run": str(out), "known": known_recipe(spec)}
    if spec in NOT_ON_GREY:
        return {**row, "status": "skipped", "why": NOT_ON_GREY[spec]}
    if not (out / "DONE").exists():
        return {**row, "status": "not trained"}
    config = json.loads((out / "config.json").read_text())
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    eval_file = out / "eval" / "eval.json"
    cells = json.loads(eval_file.read_text())["results"] if eval_file.is_file() else []
    cells = [c for c in cells if c["n"] == n and c["seed"] == 0 and c.get("grid", "uniform") == "uniform"]
    keep = ("sampler", "steps", "nfe", "fid", "kid_mean", "precision", "recall", "density", "coverage")
    cells = [{k: c[k] for k in keep if k in c} for c in cells]
    refused = out / "refused.json"
    row.update(
        refused=json.loads(refused.read_text()) if refused.is_file() else {},
        status="done",
        objective=config["objective"],
        noise=config["corruption"]["noise"],
        operator=config.get("operator"),
        steps=config["train"]["steps"],
        images=config["train"]["steps"] * config["train"]["batch_size"],
        train_seconds=loop_seconds(lines),
        cells=cells,
    )
    if cells:
        best = min(cells, key=lambda c: c["fid"])
        row["best"] = best
        if row["known"] is not None:
            row["ratio_to_known"] = best["fid"] / row["known"]["fid"]
    meta = out / "samples-default" / "samples.npz"
    if meta.is_file():
        import numpy as np

        row["default_sampler"] = str(np.load(meta)["sampler"])
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    samplers = names()
    nfes = {s: [n for k in TARGET_NFE for n in [k - 1 if s == "heun" else k]] for s in samplers}
    head = ["corruption", *[f"{s} {n}" for s in samplers for n in nfes[s]], "best default", "best known", "ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if row["status"] != "done":
            lines.append(f"| {row['corruption']} | " + " | ".join(["–"] * (len(head) - 2)) + f" | {row['status']} |")
            continue
        by = {
            (c["sampler"], i): c["fid"]
            for c in row["cells"]
            for i, k in enumerate(TARGET_NFE)
            if c["nfe"] in (k, k - 1)
        }
        missing = {s: "n/a" if s in row.get("refused", {}) else "–" for s in samplers}
        cells = [f"{by[(s, i)]:.1f}" if (s, i) in by else missing[s] for s in samplers for i in range(2)]
        best = row.get("best")
        known = row.get("known")
        best_text = f"{best['fid']:.1f} ({best['sampler']} {best['nfe']})" if best else "–"
        known_text = f"{known['fid']:.1f} ({known['sampler']} {known['nfe']})" if known else "–"
        ratio = f"{row['ratio_to_known']:.2f}" if "ratio_to_known" in row else "–"
        lines.append(f"| {row['corruption']} | " + " | ".join([*cells, best_text, known_text, ratio]) + " |")
    return "\n".join(lines)


def rescore(args: argparse.Namespace) -> None:
    """The same rows with today's best known recipes beside them (recipes measured after the defaults)."""
    data = json.loads(args.rescore.read_text())
    data = data.get("metrics", data)  # a harness Result keeps the table under "metrics"
    for row in data["rows"]:
        row["known"] = known_recipe(row["corruption"])
        row.pop("ratio_to_known", None)
        if row.get("best") and row["known"]:
            row["ratio_to_known"] = row["best"]["fid"] / row["known"]["fid"]
    data.update(markdown=markdown(data["rows"]), rescored_from=str(args.rescore))
    console.print(data["markdown"], highlight=False, markup=False)
    write("defaults", data, args.out, args=args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="folder for the runs")
    parser.add_argument("--corruptions", default=",".join(CORRUPTIONS))
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="corruptions worked on at once (one thread each)")
    parser.add_argument(
        "--samplers", default=",".join(names()), help="comma-separated samplers to evaluate (default: all registered)"
    )
    parser.add_argument("--collect", action="store_true", help="only tabulate what exists")
    parser.add_argument(
        "--rescore",
        type=Path,
        help="re-read the best known recipes for the rows of this results file (no runs needed) and write the table",
    )
    parser.add_argument("--grids", type=Path, default=ROOT / "docs" / "img", help="where the 8x8 grids go")
    parser.add_argument(
        "--tag", help="write a harness result in bench/results/quality/ with this tag (else: results/defaults.json)"
    )
    parser.add_argument("--out", type=Path, help="write the results here instead")
    parser.add_argument("train_flags", nargs="*", help="extra `softdiff train` flags (none: the defaults)")
    args = parser.parse_args()
    if args.out is None and args.tag is None:
        args.out = RESULTS / "defaults.json"
    args.samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    unknown = sorted(set(args.samplers) - set(names()))
    if unknown:
        parser.error(f"unknown sampler(s) {', '.join(unknown)}; known: {', '.join(names())}")
    if args.rescore:
        rescore(args)
        return
    specs = [s.strip() for s in args.corruptions.split(",") if s.strip()]
    start = time.time()
    if not args.collect:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in [pool.submit(train_and_eval, spec, args.runs, args) for spec in specs]:
                future.result()
    else:
        for spec in specs:
            if spec not in NOT_ON_GREY:
                default_grid(args.runs / spec.replace("+", "-"), args)
    rows = [describe(spec, args.runs, args.n) for spec in specs]
    for row in rows:
        grid = Path(row["run"]) / "samples-default" / "grid.png"
        if grid.is_file():
            args.grids.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(grid, args.grids / f"defaults-{row['corruption'].replace('+', '-')}.png")
    table = markdown(rows)
    console.print(table, highlight=False, markup=False)
    result = {
        "benchmark": "defaults",
        "command": shlex.join(sys.argv),
        "budget": "softdiff train defaults: 1200 steps x batch 64 = 76,800 images (1.3 epochs), one thread",
        "n": args.n,
        "seed": 0,
        "features": "fashion-feature-net v1 (128-d)",
        "wall_seconds": time.time() - start,
        "rows": rows,
        "markdown": table,
    }
    write("defaults", result, args.out, args=args)


if __name__ == "__main__":
    main()
