#!/usr/bin/env bash
# The whole GPU job in one device call, most valuable step first, each under its own time limit,
# each writing its results as soon as it ends (the bench rewrites its JSON after every loader
# and M), so that a time-out keeps everything that finished. Budget: about 6 minutes in all.
#   run(carry=[".gpu/part-02"], command="mv .gpu/part-02 /tmp/parts/ && bash benchmarks/gpu_suite.sh", timeout_s=600)
# after DALI's other parts were sent (../shared/gpu/README.md). Results: $OUT/gpu-*.json|csv|png,
# $OUT/suite.log, $OUT/nvidia-smi.txt.
#
# Rehearsal on a CPU machine (the same script, tiny sizes; `make gpu-rehearsal`, and a slow test):
#   GPU_SUITE_DEVICE=cpu PYTHON=.venv/bin/python OUT=/tmp/rehearsal bash benchmarks/gpu_suite.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
DEVICE=${GPU_SUITE_DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/suite.log"; }
export PYTHONUNBUFFERED=1 DALI_BA_CACHE=${DALI_BA_CACHE:-/tmp/dali-ba-cache}

if [ "$DEVICE" = cuda ]; then
  # B=256, 224 px, float16, channels-last, as the issue's figures ask; 2000 ImageNet-like images.
  IMAGES=2000 CLASSES=100 SIZE=224 B=256 STEPS=15 WARMUP=3 MS=1,2,4,8 MS_MODEL=1,4,8 MODEL=resnet50
  LOADERS=dali-ba,dali-large,torch-gpu,torch-once,torch-large
  MODEL_LOADERS=synthetic,dali-ba,dali-large,torch-gpu
  STARVED_LOADERS=dali-ba,dali-large,torch-gpu,torch-once
  T_TESTS=75 T_DATA=60 T_LOADERS=120 T_MODEL=100 T_STARVED=60
  test -d /tmp/dali || { mkdir -p /tmp/dali && cat /tmp/parts/part-* | xz -dc -T0 | tar -x -C /tmp/dali; }
  export PYTHONPATH=/tmp/dali:$PWD
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
  PRECISION=(--dtype float16 --channels-last)
else
  # The rehearsal: every command and flag of the GPU job, on the CPU, in about a minute.
  IMAGES=48 CLASSES=4 SIZE=64 B=4 STEPS=2 WARMUP=1 MS=1,2 MS_MODEL=1,2 MODEL=resnet18
  LOADERS=dali-ba,dali-large,torch-once
  MODEL_LOADERS=synthetic,dali-ba,dali-large
  STARVED_LOADERS=dali-ba,dali-large,torch-once
  T_TESTS=120 T_DATA=60 T_LOADERS=120 T_MODEL=120 T_STARVED=120
  PRECISION=(--dtype float32)
fi

"$PY" -c "import nvidia.dali as d, torch, torchvision, click, pytest, matplotlib
print('DALI', d.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())" \
  2>&1 | tee -a "$OUT/suite.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { log "a package does not import (DALI: send the parts again)"; exit 1; }

DATA=$DALI_BA_CACHE/gpu-suite-$IMAGES
log "1. GPU tests (limit ${T_TESTS}s); the data set is made meanwhile"
( [ -f "$DATA/.complete" ] || { timeout "$T_DATA" "$PY" -m dali_ba make-dataset "$DATA" --images "$IMAGES" --classes "$CLASSES" \
    >>"$OUT/suite.log" 2>&1 && touch "$DATA/.complete"; } ) &
maker=$!
timeout "$T_TESTS" "$PY" -m pytest -q -m gpu tests 2>&1 | tail -n 30 | tee -a "$OUT/suite.log"
wait "$maker" || { log "making the data set failed or timed out"; exit 1; }

common=("$DATA" -b "$B" --image-size "$SIZE" "${PRECISION[@]}" --device "$DEVICE" --steps "$STEPS" --warmup "$WARMUP")
bench() {  # bench NAME LIMIT ARGS...: one bench run, its exports in $OUT/gpu-NAME.*
  local name=$1 limit=$2
  shift 2
  log "$name (limit ${limit}s)"
  timeout "$limit" "$PY" -m dali_ba bench "${common[@]}" "$@" --export-json "$OUT/gpu-$name.json" \
      --export-csv "$OUT/gpu-$name.csv" --plot "$OUT/gpu-$name.png" 2>>"$OUT/suite.err" | tee -a "$OUT/suite.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || log "$name: exit ${PIPESTATUS[0]} (124: the time limit; the JSON keeps the runs that finished)"
}
bench loaders "$T_LOADERS" -M "$MS" --model none --loaders "$LOADERS"
bench model "$T_MODEL" -M "$MS_MODEL" --model "$MODEL" --loaders "$MODEL_LOADERS"
# Input-bound: 2 CPU threads or workers per loader, as on a node with few cores per GPU.
bench starved "$T_STARVED" -M 1,4 --model "$MODEL" --workers 2 --loaders "$STARVED_LOADERS"
log "done"
