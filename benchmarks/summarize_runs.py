"""Medians over repeated bench runs, and dali-ba's ratio to every other loader run by run.

    .venv/bin/python benchmarks/summarize_runs.py 'benchmarks/results/storage-*.json'
    .venv/bin/python benchmarks/summarize_runs.py 'benchmarks/results/roi-*.json'

One bench run on a shared machine moves by about 25%; repeated, alternating runs and their
medians are what the README quotes. A file named ``*-cold-*`` / ``*-warm-*`` is grouped by that.
"""

import collections
import glob
import json
import statistics
import sys


def cache_of(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "cold" if "-cold-" in name else "warm" if "-warm-" in name else ""


def main(pattern: str) -> None:
    paths = sorted(glob.glob(pattern))
    if not paths:
        sys.exit(f"no file matches {pattern!r}")
    rows = collections.defaultdict(list)
    ratios = collections.defaultdict(list)
    for path in paths:
        results = json.load(open(path))["results"]
        for row in results:
            rows[(row["loader"], row["aug_repeats"], cache_of(path))].append(row)
        for m in {row["aug_repeats"] for row in results}:
            at_m = {row["loader"]: row for row in results if row["aug_repeats"] == m}
            if "dali-ba" in at_m:
                for name, other in at_m.items():
                    if name != "dali-ba":
                        ours = at_m["dali-ba"]["effective_images_per_s"]
                        ratios[(m, cache_of(path), name)].append(ours / other["effective_images_per_s"])
    print(f"{len(paths)} runs matching {pattern}")
    print(f"{'loader':16s} {'M':>2s} {'cache':5s} {'runs':>4s} {'steps/s':>8s} {'eff img/s':>10s} {'files/s':>8s} "
          f"{'KiB/eff img':>12s} {'read wait %':>12s}")
    for (loader, m, cache), found in sorted(rows.items(), key=lambda item: (item[0][1], item[0][2], item[0][0])):
        wait = [r["read_wait_percent"] for r in found if r.get("read_wait_percent") is not None]
        median = lambda key, found=found: statistics.median(r[key] for r in found)  # noqa: E731
        print(f"{loader:16s} {m:2d} {cache:5s} {len(found):4d} {median('steps_per_s'):8.2f} {median('effective_images_per_s'):10.0f} "
              f"{median('files_per_s'):8.0f} {median('bytes_read_per_effective_image') / 1024:12.1f} "
              f"{(f'{statistics.median(wait):.2f}' if wait else '-'):>12s}")
    print("dali-ba effective images/s over each loader, run by run (median):")
    for (m, cache, name), values in sorted(ratios.items()):
        print(f"  M={m} {cache:5s} vs {name:16s} " + " ".join(f"{v:.2f}" for v in values) + f"  (median {statistics.median(values):.2f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/*.json")
