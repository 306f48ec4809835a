"""The per-recipe table of #31 from ``benchmarks/recipe_grid.sh``'s files: dali-ba's effective
images/s over torch-once's, run by run, and the medians; with ``--before``, the medians of an
earlier grid beside them.

    .venv/bin/python benchmarks/summarize_recipes.py 'benchmarks/results/recipes/recipes-*.json' \\
        [--before 'benchmarks/results/recipes-*.json']
"""

import argparse
import collections
import glob
import json
import re
import statistics
import sys

ORDER = ["imagenet", "trivialaugment", "randaugment", "autoaugment"]


def grid(pattern: str) -> dict:
    """(recipe, random_erase, interpolation, M) -> [(dali-ba, torch-once) effective images/s, a pair per run]."""
    paths = sorted(glob.glob(pattern))
    if not paths:
        sys.exit(f"no file matches {pattern!r}")
    runs = collections.defaultdict(list)
    for path in paths:
        match = re.search(r"recipes-(\w+)-erase([\d.]+)-(\w+)-\d+\.json$", path)
        if match is None:
            continue
        results = json.load(open(path))["results"]
        speed = {(r["loader"], r["aug_repeats"]): r["effective_images_per_s"] for r in results}
        for m in sorted({m for _, m in speed}):
            if ("dali-ba", m) in speed and ("torch-once", m) in speed:
                runs[match.groups() + (m,)].append((speed["dali-ba", m], speed["torch-once", m]))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pattern", nargs="?", default="benchmarks/results/recipes/recipes-*.json")
    parser.add_argument("--before", help="the files of an earlier grid, whose median ratios go beside")
    args = parser.parse_args()
    runs = grid(args.pattern)
    before = grid(args.before) if args.before else {}
    print("| recipe | random_erase | interpolation | M | dali-ba | torch-once | ratio (runs) | **ratio** |"
          + (" before |" if before else ""))
    print("|---|---:|---|---:|---:|---:|---|---:|" + ("---:|" if before else ""))
    for key in sorted(runs, key=lambda k: (ORDER.index(k[0]), float(k[1]), k[2], k[3])):
        pairs = runs[key]
        ratios = [a / b for a, b in pairs]
        earlier = [a / b for a, b in before.get(key, [])]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {statistics.median(a for a, _ in pairs):.0f} "
              f"| {statistics.median(b for _, b in pairs):.0f} | {', '.join(f'{r:.2f}' for r in ratios)} "
              f"| **{statistics.median(ratios):.2f}** |"
              + (f" {statistics.median(earlier):.2f} |" if earlier else (" |" if before else "")))


if __name__ == "__main__":
    main()
