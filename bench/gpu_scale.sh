#!/usr/bin/env bash
# softdiff's trainer against a bare PyTorch loop on one GPU (bench/speed/gpu_scale.py), with GPU defaults.
#
# Two runs of bench/speed/gpu_scale.py on the CUDA device, each for the CIFAR-10 recipe's network
# (50.3M parameters, 3x32x32) and the small main-job network (28x28 grey): images/s of both loops,
# peak CUDA memory, trainer/bare ratio (target >= 0.9, PASS/FAIL):
#   1. the configs as written (the recipe sets no train.amp, so fp32 with cuDNN's TF32 convolutions);
#   2. bf16 autocast of the network (--amp on, tag "bf16"), how a GPU run would train.
# Each run is cut by a hard `timeout` of RUN_S seconds; both should take 2-4 minutes on an H200 (an estimate
# from the FLOPs: this script has not run on a GPU yet).
#
#   bash bench/gpu_scale.sh                      # on the GPU machine, repo root; results in $OUT or bench/results/speed/
#   GPU_SCALE_TINY=1 bash bench/gpu_scale.sh     # CPU smoke test of this script (seconds; not a measurement;
#                                                # results in OUT, default /tmp/softdiff-gpu-scale-tiny)
#
# Environment (defaults): OUT (unset: bench/results/speed/gpu_scale-COMMIT[-bf16].json; set: those files in
# $OUT, plus log.txt), STEPS (20 timed steps per round), WARMUP (10), REPEATS (5), BATCH_CIFAR10 (128, the
# recipe's), BATCH_SMALL (64, the default config's), COMPILE (0; 1 adds --compile to both runs and both loops),
# RUN_S (270), PYTHON (python3). The GPU image lacks pydantic and kornia: carry .devcarry-quality (made by
# `bash bench/quality/gpu_quality.sh prepare`) and its wheels are installed into /tmp/softdiff-site.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
cd "$REPO" || exit 3
die() { echo "gpu_scale: $*" >&2; exit 3; }

TINY=${GPU_SCALE_TINY:-0}
if [[ "$TINY" == 1 ]]; then  # every path of the script on the CPU at toy size; nothing of it a measurement
  DEVICE=cpu; STEPS=${STEPS:-2}; WARMUP=${WARMUP:-1}; REPEATS=${REPEATS:-2}
  BATCH_CIFAR10=${BATCH_CIFAR10:-4}; BATCH_SMALL=${BATCH_SMALL:-4}; EXTRA=(--tiny --threads 1)
  OUT=${OUT:-/tmp/softdiff-gpu-scale-tiny}  # never beside real results
else
  DEVICE=cuda; EXTRA=()
fi
STEPS=${STEPS:-20}; WARMUP=${WARMUP:-10}; REPEATS=${REPEATS:-5}; COMPILE=${COMPILE:-0}; RUN_S=${RUN_S:-270}
BATCH_CIFAR10=${BATCH_CIFAR10:-128}; BATCH_SMALL=${BATCH_SMALL:-64}
[[ "$COMPILE" == 1 ]] && EXTRA+=(--compile)

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
CUDA=$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null) \
  || die "$PYTHON has no torch; install a CUDA build of torch first (this script does not install torch)"
[[ "$TINY" == 1 || "$CUDA" == 1 ]] || die "torch sees no CUDA device (GPU_SCALE_TINY=1 runs the CPU smoke test)"
missing() { "$PYTHON" -c 'import importlib.util as u
print(" ".join(m for m in ("pydantic", "kornia", "rich", "safetensors", "numpy", "PIL") if u.find_spec(m) is None))'; }
if [[ -n "$(missing)" ]] && compgen -G "$REPO/.devcarry-quality/wheels/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/softdiff-site \
    "$REPO"/.devcarry-quality/wheels/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/softdiff-site"
fi
[[ -z "$(missing)" ]] || die "missing Python packages: $(missing); carry .devcarry-quality (bash \
bench/quality/gpu_quality.sh prepare) or install them"

OUT_ARGS=(); LOG=/dev/null
if [[ -n "${OUT:-}" ]]; then mkdir -p "$OUT" || die "cannot make $OUT"; OUT_ARGS=(--out "$OUT"); LOG="$OUT/log.txt"; fi
run() {  # one configuration; a failed or cut run is reported and the next still runs
  echo "gpu_scale: $*" | tee -a "$LOG"
  timeout -k 10 "$RUN_S" "$PYTHON" -m bench.speed.gpu_scale --device "$DEVICE" --steps "$STEPS" --warmup "$WARMUP" \
    --repeats "$REPEATS" --batch "cifar10=$BATCH_CIFAR10" --batch "small=$BATCH_SMALL" "${EXTRA[@]}" \
    "${OUT_ARGS[@]}" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [[ $rc == 0 ]] || echo "gpu_scale: run '$*' ended with status $rc" | tee -a "$LOG"
  return "$rc"
}
status=0
if [[ "$TINY" == 1 ]]; then
  run --amp auto --tag cpu-smoke || status=1
  run --amp on --tag cpu-smoke-bf16 --networks small || status=1
else
  run --amp auto || status=1
  run --amp on --tag bf16 || status=1
fi
exit "$status"
