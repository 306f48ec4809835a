"""Medians over the alternating warm / cold-cache bench runs (``benchmarks/results/storage-*.json``).

    for r in 1 2 3 4 5 6; do for c in warm cold; do
      dali-ba bench --loaders dali-ba,dali-ba-tar -M 4 $([ $c = cold ] && echo --cold-cache) \\
        --export-json benchmarks/results/storage-$c-$r.json; done; done
    .venv/bin/python benchmarks/summarize_storage.py
"""

import collections
import glob
import json
import statistics

runs = collections.defaultdict(list)
for path in sorted(glob.glob("benchmarks/results/storage-*.json")):
    cache = path.rsplit("/", 1)[1].split("-")[1]
    for row in json.load(open(path))["results"]:
        runs[(row["loader"], row["aug_repeats"], cache)].append(row)
print(f"{'loader':12s} {'M':>2s} {'cache':5s} {'runs':>4s} {'median steps/s':>15s} {'median read wait %':>19s} {'files/s':>8s}")
for (loader, m, cache), rows in sorted(runs.items()):
    wait = [r["read_wait_percent"] for r in rows if r["read_wait_percent"] is not None]
    print(f"{loader:12s} {m:2d} {cache:5s} {len(rows):4d} {statistics.median(r['steps_per_s'] for r in rows):15.2f} "
          f"{(f'{statistics.median(wait):.2f}' if wait else '-'):>19s} {statistics.median(r['files_per_s'] for r in rows):8.0f}")
