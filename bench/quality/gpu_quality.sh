#!/usr/bin/env bash
# The fair soft-vs-vanilla benchmark (bench/quality/quality.py) on one GPU, inside a wall-clock budget.
#
# What it measures: the recipes of bench/quality/recipes/ (soft-blur, x0-blur, vanilla) trained at the
# same time on one GPU (one process each) with the shared budget bench/quality/recipes/budget.toml made
# CUDA-friendly: batch BATCH, learning rate x sqrt(BATCH / budget batch), the EMA (its half-life is
# in images, unscaled), bf16 autocast, channels-last. Each run gets EPOCHS epochs, or as many steps
# as fit TRAIN seconds: quality.py trains WARMUP steps, measures a step, and caps the step count
# (the same for every run; recorded in $OUT/quality.json under budget.plan).
# Then FID/KID of N samples against NFE 5/10/20/50 for SAMPLERS, the floor, the plot and grids.
#
#   bash bench/quality/gpu_quality.sh prepare   # here (internet): Fashion-MNIST + missing wheels -> .devcarry-quality/
#   bash bench/quality/gpu_quality.sh           # on the GPU machine, repo root, with .devcarry-quality carried
#   GPU_QUALITY_TINY=1 nice -n 10 bash bench/quality/gpu_quality.sh   # CPU smoke test of this script (a few minutes)
#
# Safe against a time limit: everything ends by about BUDGET_S + 60 s (a hard `timeout`), checkpoints
# are written every CKPT steps, every finished cell is stored at once, and $OUT/quality.json is
# rewritten after each stage; a re-run on the same machine resumes (runs live in RUNS).
# $OUT gets at most 7 files: quality.json, log.txt, quality-fid-vs-nfe.png, one
# quality-samples-NAME.png per run, runs.tar.gz (configs, metrics, eval cells; no weights).
#
# Environment (defaults): OUT (./gpu-quality-out), BUDGET_S (480: the whole script), EVAL_S (120:
# kept for evaluation), EPOCHS (50), STEPS (unset: plan from a warm-up of WARMUP=200 steps; set:
# exactly this many steps, no warm-up), BATCH (512), AMP (1), COMPILE (0), THREADS (4 per process),
# N (2000), EVAL_BATCH (2000), SAMPLERS (momentum,naive,euler), NFE (5,10,20,50), CKPT (500),
# DATA_DIR (Fashion-MNIST .gz files), RUNS (/tmp/softdiff-quality-runs), PYTHON (python3).
set -uo pipefail
START=$(date +%s)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CARRY="$REPO/.devcarry-quality"
PYTHON=${PYTHON:-python3}
cd "$REPO" || exit 3

die() { echo "gpu_quality: $*" >&2; exit 3; }

if [[ "${1:-}" == "prepare" ]]; then  # on a machine with the data set and internet, before carrying
  mkdir -p "$CARRY/fashion-mnist" "$CARRY/wheels"
  cp /usr/share/datasets/fashion-mnist/*.gz "$CARRY/fashion-mnist/" || die "no Fashion-MNIST in /usr/share/datasets"
  # the GPU image (Python 3.12) has torch, typer, rich, torchmetrics, matplotlib; not pydantic or kornia
  specs=$("$PYTHON" -c 'import importlib.metadata as m
print(" ".join(f"{p}=={m.version(p)}" for p in ("pydantic", "pydantic-core", "annotated-types",
      "typing-inspection", "typing-extensions", "kornia", "kornia-rs")))')
  # shellcheck disable=SC2086
  "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$CARRY/wheels" $specs || die "pip download failed"
  du -sh "$CARRY"; echo "carry .devcarry-quality and run: bash bench/quality/gpu_quality.sh"; exit 0
fi

TINY=${GPU_QUALITY_TINY:-0}
OUT=${OUT:-$REPO/gpu-quality-out}
RUNS=${RUNS:-/tmp/softdiff-quality-runs}
if [[ "$TINY" == 1 ]]; then  # every path of the script on the CPU, nothing of it a measurement
  BUDGET_S=${BUDGET_S:-600}; EVAL_S=${EVAL_S:-90}; BATCH=${BATCH:-32}; AMP=${AMP:-0}; THREADS=${THREADS:-1}
  WARMUP=${WARMUP:-4}; CKPT=${CKPT:-3}; NFE=${NFE:-2,4}
  RUNS=${RUNS%/}-tiny
fi
BUDGET_S=${BUDGET_S:-480}; EVAL_S=${EVAL_S:-120}; EPOCHS=${EPOCHS:-50}; WARMUP=${WARMUP:-200}
BATCH=${BATCH:-512}; AMP=${AMP:-1}; COMPILE=${COMPILE:-0}; THREADS=${THREADS:-4}; CKPT=${CKPT:-500}
N=${N:-2000}; EVAL_BATCH=${EVAL_BATCH:-2000}; SAMPLERS=${SAMPLERS:-momentum,naive,euler}; NFE=${NFE:-5,10,20,50}
mkdir -p "$OUT" "$RUNS"
LOG="$OUT/log.txt"
exec > >(tee -a "$LOG") 2>&1
echo "gpu_quality: $(date -u +%FT%TZ) repo $REPO, out $OUT, runs $RUNS, budget ${BUDGET_S}s, tiny $TINY"

pack() {  # what comes back from $OUT besides quality.json and the images: the runs without weights
  tar czf "$OUT/runs.tar.gz" -C "$RUNS" --exclude=checkpoints . 2>/dev/null
  "$PYTHON" - "$OUT/quality.json" <<'EOF' || true
import json, sys
try:
    report = json.load(open(sys.argv[1]))
    report = report.get("metrics", report)  # a harness Result (the report is its metrics)
except OSError:
    sys.exit("gpu_quality: no quality.json (training did not finish)")
b = report["budget"]
print(f"gpu_quality: complete={report['complete']} steps={b.get('steps')} batch={b['batch_size']} "
      f"epochs={b.get('epochs', 0):.2f} device={b.get('device')} plan={b.get('plan')}")
for name, run in report["runs"].items():
    print(f"  {name}: step {run['checkpoint_step']}, {run['images_seen']:,} images, {run['train_seconds']:.0f} s")
for name, per in report.get("cells", {}).items():
    best = {}
    for cell in (c for cs in per.values() for c in cs):
        if cell["nfe"] not in best or cell["fid"] < best[cell["nfe"]]["fid"]:
            best[cell["nfe"]] = cell
    row = ", ".join(f"NFE {k}: {c['fid']:.2f} ({c['sampler']})" for k, c in sorted(best.items()))
    print(f"  {name} best FID: {row}")
if "floor" in report:
    print(f"  real-data floor: FID {report['floor']['fid']:.2f}")
EOF
  echo "gpu_quality: done after $(( $(date +%s) - START )) s"
}
trap pack EXIT

# --- Python and the package: torch must be there; the rest is imported, carried or installed
CUDA=$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null) \
  || die "$PYTHON has no torch; install a CUDA build of torch first (this script does not install torch)"
if [[ "$TINY" != 1 && "$CUDA" != 1 ]]; then
  die "torch sees no CUDA device; this script is for a GPU machine (GPU_QUALITY_TINY=1 runs its CPU smoke test)"
fi
missing() { "$PYTHON" - <<'EOF'
import importlib.metadata
import importlib.util
mods = ("pydantic", "kornia", "typer", "rich", "torchmetrics", "safetensors", "matplotlib", "PIL", "numpy")
absent = [m for m in mods if importlib.util.find_spec(m) is None]
if "pydantic" not in absent and int(importlib.metadata.version("pydantic").split(".")[0]) < 2:
    absent.append("pydantic>=2")
print(" ".join(absent))
EOF
}
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [[ -n "$(missing)" ]] && compgen -G "$CARRY/wheels/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/softdiff-site "$CARRY"/wheels/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/softdiff-site"
fi
if [[ -n "$(missing)" ]]; then  # torch already satisfies the requirement, so pip does not pull it again
  "$PYTHON" -m pip install -q --retries 0 --timeout 10 -e . || true
fi
[[ -z "$(missing)" ]] || die "missing Python packages: $(missing); run 'bash bench/quality/gpu_quality.sh prepare' \
where pip has internet and carry .devcarry-quality, or install them"
"$PYTHON" -c 'import softdiff, torch; print("gpu_quality: softdiff", softdiff.__file__, "torch", torch.__version__,
      torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")'

# --- data: the system copy, else the carried one
if [[ -z "${DATA_DIR:-}" ]]; then
  DATA_DIR=/usr/share/datasets/fashion-mnist
  [[ -f "$DATA_DIR/train-images-idx3-ubyte.gz" ]] || DATA_DIR="$CARRY/fashion-mnist"
fi
[[ -f "$DATA_DIR/train-images-idx3-ubyte.gz" ]] || die "no Fashion-MNIST in $DATA_DIR; set DATA_DIR or run prepare"

# --- the GPU budget, scaled from the CPU one: lr x sqrt(k); the EMA half-life is in images already
read -r LR < <("$PYTHON" - "$BATCH" <<'EOF'
import sys
try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib
base = tomllib.load(open("bench/quality/recipes/budget.toml", "rb"))
k = int(sys.argv[1]) / base["train"]["batch_size"]
print(f"{base['optim']['lr'] * k ** 0.5:.6g}")
EOF
)
bool() { [[ "$1" == 1 ]] && echo true || echo false; }
ARGS=(--parallel --runs "$RUNS" --out "$OUT/quality.json" --img-dir "$OUT" --threads "$THREADS"
      --set "train.batch_size=$BATCH" --set "optim.lr=$LR"
      --set "train.amp=$(bool "$AMP")" --set "train.compile=$(bool "$COMPILE")" --set train.channels_last=true
      --set "train.ckpt_every=$CKPT" --set "data.data_dir=\"$DATA_DIR\"" --samplers "$SAMPLERS" --nfe "$NFE")
if [[ "$TINY" == 1 ]]; then
  ARGS+=(--tiny --device cpu --steps "${STEPS:-12}")
else
  ARGS+=(--device cuda -n "$N" --batch-size "$EVAL_BATCH" --epochs "$EPOCHS")
  [[ -n "${STEPS:-}" ]] && ARGS+=(--steps "$STEPS")
fi
if [[ -z "${STEPS:-}" ]]; then  # measure a step in a warm-up, then train as many as fit
  TRAIN=$(( BUDGET_S - EVAL_S - ($(date +%s) - START) ))
  (( TRAIN > 60 )) || die "BUDGET_S=$BUDGET_S leaves ${TRAIN}s for training after EVAL_S=$EVAL_S"
  ARGS+=(--time-budget "$TRAIN" --warmup-steps "$WARMUP")
fi
LEFT=$(( BUDGET_S + 40 - ($(date +%s) - START) ))  # + 15 s for the kill, the rest for packing
echo "gpu_quality: batch $BATCH, lr $LR, amp $AMP, compile $COMPILE; hard stop in ${LEFT}s"
echo "gpu_quality: python bench/quality/quality.py ${ARGS[*]}"
PYTHONUNBUFFERED=1 timeout --signal=INT --kill-after=15 "$LEFT" "$PYTHON" bench/quality/quality.py "${ARGS[@]}"
status=$?
(( status == 124 )) && echo "gpu_quality: stopped at the time limit; re-run on the same machine to resume"
exit "$status"
