#!/usr/bin/env bash
# softdiff's trainer against a bare PyTorch loop on one GPU (bench/speed/gpu_scale.py), with GPU defaults.
#
# Runs of bench/speed/gpu_scale.py on the CUDA device, in order of importance, for the CIFAR-10 recipe's
# network (50.3M parameters, 3x32x32) and the small main-job network (28x28 grey): images/s of both loops,
# peak CUDA memory, trainer/bare ratio (target >= 0.9, PASS/FAIL):
#   1. bf16 autocast, eager (--amp on, tag "bf16"): how a GPU run would train without compilation;
#   2. bf16, torch.compile in both loops (--compile default, tag "bf16-compile"): the trainer against a bare
#      compiled loop;
#   3. bf16, CUDA graphs (--compile reduce-overhead, tag "bf16-cudagraphs"), small network only: what graphs
#      give a launch-bound network;
#   4. the configs as written (the recipe sets no train.amp: fp32 with cuDNN's TF32 convolutions), eager.
# Each run is cut by a hard `timeout` of RUN_S seconds, and no run starts with less than MIN_S of the TOTAL_S
# budget left. The whole should take 6-9 minutes on an H200 (an estimate: compiling the 50M network twice
# dominates; this script has not run on a GPU yet).
#
#   bash bench/gpu_scale.sh                      # on the GPU machine, repo root; results in $OUT or bench/results/speed/
#   GPU_SCALE_TINY=1 bash bench/gpu_scale.sh     # CPU smoke test of this script (a minute; not a measurement;
#                                                # results in OUT, default /tmp/softdiff-gpu-scale-tiny)
#
# Environment (defaults): OUT (unset: bench/results/speed/gpu_scale-COMMIT-TAG.json; set: those files in
# $OUT, plus log.txt), STEPS (20 timed steps per round), WARMUP (10), REPEATS (5), BATCH_CIFAR10 (128, the
# recipe's), BATCH_SMALL (64, the default config's), RUN_S (240), TOTAL_S (570), MIN_S (60), PYTHON (python3).
# The GPU image lacks pydantic and kornia: carry .devcarry-quality (made by
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
STEPS=${STEPS:-20}; WARMUP=${WARMUP:-10}; REPEATS=${REPEATS:-5}; RUN_S=${RUN_S:-240}; TOTAL_S=${TOTAL_S:-570}
MIN_S=${MIN_S:-60}; BATCH_CIFAR10=${BATCH_CIFAR10:-128}; BATCH_SMALL=${BATCH_SMALL:-64}

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
START=$SECONDS
run() {  # one configuration; a failed, cut or skipped run is reported and the next still runs
  local left=$((TOTAL_S - (SECONDS - START)))
  if ((left < MIN_S)); then
    echo "gpu_scale: skipped '$*': ${left}s of the ${TOTAL_S}s budget left (MIN_S=$MIN_S)" | tee -a "$LOG"
    return 1
  fi
  local cut=$((left < RUN_S ? left : RUN_S))
  echo "gpu_scale: $* (cut at ${cut}s)" | tee -a "$LOG"
  timeout -k 10 "$cut" "$PYTHON" -m bench.speed.gpu_scale --device "$DEVICE" --steps "$STEPS" --warmup "$WARMUP" \
    --repeats "$REPEATS" --batch "cifar10=$BATCH_CIFAR10" --batch "small=$BATCH_SMALL" "${EXTRA[@]}" \
    "${OUT_ARGS[@]}" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  [[ $rc == 0 ]] || echo "gpu_scale: run '$*' ended with status $rc" | tee -a "$LOG"
  return "$rc"
}
status=0
if [[ "$TINY" == 1 ]]; then  # compiling on 2 CPU cores takes minutes per network: the small one shows the path
  run --amp on --tag cpu-smoke-bf16 || status=1
  run --amp on --compile default --networks small --tag cpu-smoke-bf16-compile || status=1
  run --amp on --compile reduce-overhead --networks small --tag cpu-smoke-bf16-cudagraphs || status=1
  run --amp auto --tag cpu-smoke || status=1
else
  run --amp on --tag bf16 || status=1
  run --amp on --compile default --tag bf16-compile || status=1
  run --amp on --compile reduce-overhead --networks small --tag bf16-cudagraphs || status=1
  run --amp auto || status=1
fi
exit "$status"
