"""The read stage alone against the decode + augment stage: can reading keep up?

    .venv/bin/python benchmarks/profile_reads.py [DATA_DIR] [--batches 25] [--rounds 2]

Times, interleaved for ``--rounds`` rounds (this machine is shared and noisy):
* the read stage alone (``ReadAhead``, the loader's reader threads, nothing decoded) over the
  data set's files and over its tar-shard copy, with a cold page cache (files evicted first) and
  a warm one;
* the decode + augment stage alone at M=1 (the library's pipeline fed from memory).
Each as files per second over ``--batches`` batches of B=32. Without DATA_DIR it uses
``dali-ba bench``'s cached default set.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from nvidia.dali import types

from dali_ba.bench.runner import evict_from_page_cache, tar_copy
from dali_ba.config import LoaderConfig
from dali_ba.dataset import scan_image_folder
from dali_ba.pipeline import build_pipeline
from dali_ba.reader import Batch, ReadAhead
from dali_ba.recipes import RECIPES, OutputSpec

B = 32
DEFAULTS = LoaderConfig()  # the loader's reader threads and read-ahead


def read_stage(index, batches: int, cold: bool, seed: int) -> float:
    order = np.random.default_rng(seed).permutation(len(index))[: batches * B]
    if cold:
        evict_from_page_cache(index.files)
    reader = ReadAhead(index.read, threads=DEFAULTS.read_threads, depth=DEFAULTS.read_ahead)
    start = time.perf_counter()
    reader.start(Batch(n, order[n * B : (n + 1) * B]) for n in range(batches))
    taken = 0
    try:
        while True:
            taken += len(reader.take()[1])
    except StopIteration:
        pass
    reader.close()
    return taken / (time.perf_counter() - start)


def decode_stage(index, batches: int) -> float:
    encoded = itertools.cycle([index.read(i) for i in range(min(len(index), 256))])
    labels = np.zeros(B, dtype=np.int64)
    pipe = build_pipeline(source=lambda: ([next(encoded) for _ in range(B)], labels), recipe=RECIPES["imagenet"],
                          aug_repeats=1, spec=OutputSpec(224, types.FLOAT, False), batch_size=B, device_id=None,
                          num_threads=2, seed=0, prefetch_queue_depth=2)
    pipe.schedule_run()
    for _ in range(3):
        pipe.outputs()
        pipe.schedule_run()
    start = time.perf_counter()
    for _ in range(batches):
        pipe.outputs()
        pipe.schedule_run()
    return batches * B / (time.perf_counter() - start)


def main():
    from dali_ba.cli import default_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--batches", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    folder = scan_image_folder(args.data_dir or default_dataset())
    shards = tar_copy(folder)
    rows: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for name, index in (("ImageFolder", folder), ("tar shards", shards)):
            for cold in (True, False):
                key = f"read stage, {name}, {'cold' if cold else 'warm'} page cache"
                rows.setdefault(key, []).append(read_stage(index, args.batches, cold, seed=round_))
        rows.setdefault("decode + augment stage, M=1 (from memory)", []).append(decode_stage(folder, args.batches))
    print(f"B={B}, {args.batches} batches, files/s per round ({args.rounds} rounds), {len(folder)} images")
    for name, values in rows.items():
        print(f"  {name:48s} " + "  ".join(f"{v:7.0f}" for v in values))


if __name__ == "__main__":
    main()
