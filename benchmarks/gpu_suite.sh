#!/usr/bin/env bash
# The whole GPU job in one device call, most valuable step first, each under its own time limit,
# each writing its results as soon as it can (the bench rewrites its JSON after every loader and
# M), so that a time-out keeps everything that finished. Budget: about 8 minutes in all.
#   run(carry=[".gpu/part-02", ".gpu/SHA256"], timeout_s=600,
#       command="mv .gpu/part-02 /tmp/parts/ && bash benchmarks/gpu_suite.sh")
# after DALI's other parts were sent (../shared/gpu/README.md). Results in $OUT: probe.json,
# pytest.log, gpu-*.json|csv|png, suite.log, suite.err, nvidia-smi.txt; the summary is printed last.
#
# Steps: 0 DALI unpacked (once), the data set made in the background; 1 the decode probe (each
# case in a child: a crash there is a verdict, not the end of the job); 2 the GPU tests; 3 loaders
# only; 4 ResNet-50 in the loop; 5 the trivialaugment recipe, loaders only; 6 input-bound; 7 DeiT's
# recipe, dali-ba beside timm's own loader (the GPU image has timm). M runs
# in the order of value (4, 1, 8, 2). Any step may be run again on the same machine: what a cut
# run left behind is redone or reused.
#
# Rehearsal on a CPU machine (the same script, tiny sizes in the same ratios, the region decoders
# made to crash, one step doomed to fail a run, one step cut by its limit; `make gpu-rehearsal`,
# and a slow test):
#   GPU_SUITE_DEVICE=cpu PYTHON=.venv/bin/python OUT=/tmp/rehearsal bash benchmarks/gpu_suite.sh
# Every T_* limit below may be overridden from the environment.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
DEVICE=${GPU_SUITE_DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/suite.log"; }
export PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1 DALI_BA_CACHE=${DALI_BA_CACHE:-/tmp/dali-ba-cache}

if [ "$DEVICE" = cuda ]; then
  # B=256, 224 px, float16, channels-last, as the issue's figures ask. ResNet-50 runs at M=4 and 1
  # only: B*M=2048 images of activations (M=8) would not fit beside the loaders.
  B=256 MAX_M=8 CLASSES=100 SIZE=224 STEPS=10 WARMUP=2 MS=4,1,8,2 MS_MODEL=4,1 MODEL=resnet50 WORKERS=8
  LOADERS=dali-ba,dali-large,torch-gpu,torch-once
  MODEL_LOADERS=synthetic,dali-ba,dali-large,torch-gpu
  RECIPE_LOADERS=dali-ba,dali-large,torch-gpu
  STARVED_LOADERS=dali-ba,dali-large,torch-gpu,torch-once STARVED_STEPS=6
  : "${T_PROBE:=120}" "${T_DATA:=240}" "${T_TESTS:=90}" "${T_LOADERS:=140}" "${T_MODEL:=100}" "${T_RECIPE:=40}"
  : "${T_STARVED:=60}" "${T_TIMM:=60}"
  PROBE_DEVICE=cuda:0 SIMULATE_CRASH=
  bash benchmarks/unpack_dali.sh /tmp/parts /tmp/dali .gpu/SHA256 2>&1 | tee -a "$OUT/suite.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { log "DALI could not be unpacked"; exit 1; }
  export PYTHONPATH=/tmp/dali:$PWD
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
  PRECISION=(--dtype float16 --channels-last)
else
  # The rehearsal: every command and flag of the GPU job, on the CPU, with the same images per
  # largest batch (8 full batches of B*max M) and the region decoders crashing on purpose.
  B=2 MAX_M=8 CLASSES=4 SIZE=64 STEPS=2 WARMUP=1 MS=4,1,8,2 MS_MODEL=4,1 MODEL=resnet18 WORKERS=1
  LOADERS=dali-ba,dali-large,torch-once
  MODEL_LOADERS=synthetic,dali-ba,dali-large
  RECIPE_LOADERS=dali-ba,dali-large,torch-once
  # The input-bound step is cut by its limit on purpose: far more steps than 15 s can hold, on any
  # machine, while the bench writes its plan within seconds of starting.
  STARVED_LOADERS=dali-ba,dali-large,torch-once STARVED_STEPS=1000
  : "${T_PROBE:=150}" "${T_DATA:=120}" "${T_TESTS:=120}" "${T_LOADERS:=240}" "${T_MODEL:=120}" "${T_RECIPE:=120}"
  : "${T_STARVED:=15}" "${T_TIMM:=120}"
  PROBE_DEVICE=cpu SIMULATE_CRASH=${SIMULATE_CRASH-region,random_crop}
  PRECISION=(--dtype float32)
fi
# Every (loader, M) gets at least 8 full batches per epoch, the large-batch baselines included.
IMAGES=$((8 * B * MAX_M))

"$PY" -c "import nvidia.dali as d, torch, torchvision, click, pytest, matplotlib
print('DALI', d.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())" \
  2>&1 | tee -a "$OUT/suite.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { log "a package does not import (DALI: send the parts again)"; exit 1; }

# The data set is made in the background, into a folder of its own that is renamed when whole: a
# run cut meanwhile leaves only that folder, which the next run removes and makes again.
DATA=$DALI_BA_CACHE/gpu-suite-$IMAGES
if [ -d "$DATA" ]; then
  maker=
else
  rm -rf "$DATA.partial"
  ( timeout "$T_DATA" "$PY" -m dali_ba make-dataset "$DATA.partial" --images "$IMAGES" --classes "$CLASSES" \
      >>"$OUT/suite.log" 2>>"$OUT/suite.err" && mv "$DATA.partial" "$DATA" ) &
  maker=$!
fi

step() {  # step NAME LIMIT COMMAND...: runs COMMAND under LIMIT seconds, logging its real exit code
  local name=$1 limit=$2 rc
  shift 2
  log "$name (limit ${limit}s)"
  timeout "$limit" "$@" 2>>"$OUT/suite.err" | tee -a "$OUT/suite.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    case $rc in
      124) why="cut by its time limit; the exports keep what finished" ;;
      139) why="segmentation fault" ;;
      *) why="see suite.err" ;;
    esac
    log "$name: exit $rc ($why)"
  fi
  return 0
}

step "0. decode probe, each case in a child" "$T_PROBE" \
  "$PY" -m dali_ba probe-decode --device "$PROBE_DEVICE" --out "$OUT/probe.json" --simulate-crash "$SIMULATE_CRASH"

log "1. GPU tests (limit ${T_TESTS}s, 60 s a test); full log: pytest.log"
timeout "$T_TESTS" "$PY" -m pytest -v -rA --timeout 60 --durations 15 -p no:cacheprovider -m gpu tests >"$OUT/pytest.log" 2>&1
rc=$?
tail -n 25 "$OUT/pytest.log" | tee -a "$OUT/suite.log"
[ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || log "GPU tests: exit $rc (124: cut by the limit; pytest.log has every test that ran)"

if [ -n "$maker" ] && ! wait "$maker"; then
  log "making the data set failed or ran out of its ${T_DATA}s; rerun the suite to make it again"
  exit 1
fi

common=("$DATA" -b "$B" --image-size "$SIZE" "${PRECISION[@]}" --device "$DEVICE" --steps "$STEPS" --warmup "$WARMUP")
bench() {  # bench NAME LIMIT ARGS...: one bench step, its exports in $OUT/gpu-NAME.*
  local name=$1 limit=$2
  shift 2
  step "$name" "$limit" "$PY" -m dali_ba bench "${common[@]}" "$@" --export-json "$OUT/gpu-$name.json" \
      --export-csv "$OUT/gpu-$name.csv" --plot "$OUT/gpu-$name.png"
}
bench loaders "$T_LOADERS" -M "$MS" --model none --workers "$WORKERS" --loaders "$LOADERS"
bench model "$T_MODEL" -M "$MS_MODEL" --model "$MODEL" --workers "$WORKERS" --loaders "$MODEL_LOADERS"
# An auto-augment recipe beside imagenet's figures: on a GPU, DALI's policies in dali-ba and
# dali-large, torchvision's on the GPU's tensors in torch-gpu.
bench recipe "$T_RECIPE" -M 4,1 --model none --workers "$WORKERS" --recipe trivialaugment --loaders "$RECIPE_LOADERS"
# Input-bound: 2 CPU threads or workers per loader, as on a node with few cores per GPU.
bench starved "$T_STARVED" -M 4,1 --model "$MODEL" --workers 2 --steps "$STARVED_STEPS" --warmup 1 --loaders "$STARVED_LOADERS"
# DeiT's data recipe at its --aug-repeats 3: dali-ba (timm's ops in DALI) beside timm's own loader
# (RepeatAugSampler: each copy decoded again; PIL ops in DataLoader workers). Last: worth least.
bench timm "$T_TIMM" -M 3,1 --model none --workers "$WORKERS" --recipe rand-m9-mstd0.5-inc1 --random-erase 0.25 \
  --interpolation bicubic --loaders dali-ba,timm
if [ "$DEVICE" != cuda ]; then
  # The rehearsal's doomed step: B larger than the data set, so every run fails and is recorded.
  bench doomed 60 -M 1 -b $((IMAGES + 1)) --model none --workers 1 --loaders dali-ba,torch-large
fi
log "summary"
"$PY" benchmarks/suite_summary.py "$OUT" | tee -a "$OUT/suite.log"
log "done"
