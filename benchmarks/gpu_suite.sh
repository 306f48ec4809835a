#!/usr/bin/env bash
# The whole GPU job of issue 5 in one device call: GPU tests, then the GPU bench, results in $OUT.
# Run on the lent GPU machine after DALI's parts were sent (../shared/gpu/README.md), e.g.
#   run(command="bash benchmarks/gpu_suite.sh", timeout_s=600)
# Each step appends to $OUT/suite.log; results: $OUT/gpu-*.json, .csv, .png, $OUT/nvidia-smi.txt.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/suite.log"; }
export PYTHONUNBUFFERED=1 DALI_BA_CACHE=/tmp/dali-ba-cache

test -d /tmp/dali || { mkdir -p /tmp/dali && cat /tmp/parts/part-* | xz -dc -T0 | tar -x -C /tmp/dali; }
export PYTHONPATH=/tmp/dali:$PWD
python3 -c "import nvidia.dali as d, torch; print('DALI', d.__version__, 'torch', torch.__version__, torch.cuda.get_device_name())" \
  | tee -a "$OUT/suite.log" || { log "DALI does not import: send the parts again"; exit 1; }
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
# The GPU image has click and pytest? If not, they travel as wheels (.whl, device README).
python3 -c "import click, pytest" 2>>"$OUT/suite.log" || { log "click/pytest missing: carry them as wheels"; exit 1; }

log "GPU tests"
timeout 150 python3 -m pytest -q tests/test_gpu.py tests/test_loader.py 2>&1 | tail -n 30 | tee -a "$OUT/suite.log"

log "make the data set (5000 images)"
timeout 120 python3 -m dali_ba make-dataset /tmp/imagenet-like-5000 --images 5000 --classes 100 2>/dev/null | tee -a "$OUT/suite.log"

common=(/tmp/imagenet-like-5000 -b 256 --image-size 224 --dtype float16 --channels-last --device cuda --steps 20 --warmup 5 --workers 16)
log "bench, loaders only"
timeout 150 python3 -m dali_ba bench "${common[@]}" -M 1,2,4,8 --model none \
  --loaders dali-ba,dali-large,torch-gpu,torch-once,torch-large \
  --export-json "$OUT/gpu-loaders.json" --export-csv "$OUT/gpu-loaders.csv" --plot "$OUT/gpu-loaders.png" 2>>"$OUT/suite.err" | tee -a "$OUT/suite.log"
log "bench, ResNet-50 (AMP, channels-last) in the loop, and the model alone"
timeout 150 python3 -m dali_ba bench "${common[@]}" -M 1,4,8 --model resnet50 \
  --loaders synthetic,dali-ba,dali-large,torch-gpu \
  --export-json "$OUT/gpu-resnet50.json" --export-csv "$OUT/gpu-resnet50.csv" --plot "$OUT/gpu-resnet50.png" 2>>"$OUT/suite.err" | tee -a "$OUT/suite.log"
log "done"
