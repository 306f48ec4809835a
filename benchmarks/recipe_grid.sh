#!/usr/bin/env bash
# The per-recipe grid of #31: dali-ba beside torchvision's DataLoader (torch-once: PIL decode once,
# M transforms on 2 workers) for every auto-augment recipe, with and without erasing, bilinear and
# bicubic, ROUNDS rounds, the combinations interleaved within a round. Summarize with
#
#     .venv/bin/python benchmarks/summarize_recipes.py "$OUT/recipes-*.json"
#
#     bash benchmarks/recipe_grid.sh [ROUNDS] [OUT_DIR]
set -euo pipefail
ROUNDS=${1:-3}
OUT=${2:-benchmarks/results}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
COMBOS=(
  "imagenet 0 bilinear"
  "trivialaugment 0 bilinear" "trivialaugment 0.25 bilinear" "trivialaugment 0 bicubic"
  "randaugment 0 bilinear" "randaugment 0.25 bilinear"
  "autoaugment 0 bilinear" "autoaugment 0.25 bilinear"
)
for round in $(seq 1 "$ROUNDS"); do
  for combo in "${COMBOS[@]}"; do
    read -r recipe erase interpolation <<<"$combo"
    echo "== round $round: $recipe, random_erase $erase, $interpolation"
    "$PY" -m dali_ba bench --recipe "$recipe" --random-erase "$erase" --interpolation "$interpolation" \
      -M 1,3,4 --loaders dali-ba,torch-once --steps 12 --warmup 3 \
      --export-json "$OUT/recipes-$recipe-erase$erase-$interpolation-$round.json" | tail -4
  done
done
