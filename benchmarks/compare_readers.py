"""Reader threads (``ReadAhead``, what the loader uses) against DALI's parallel external source.

    .venv/bin/python benchmarks/compare_readers.py [DATA_DIR] [--batches 25] [--rounds 2]

Both feed the same DALI pipeline, which only passes the encoded bytes through (no decode), so
the figure is how fast each way gets files into DALI: files/s over ``--batches`` batches of B=32,
cold page cache (files evicted first) and warm, interleaved for ``--rounds`` rounds. The parallel
external source runs a picklable batch callback in 2 spawned worker processes (``py_num_workers``);
the reader threads run in the training process, with the loader's defaults (16 threads, 2
batches ahead).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from nvidia.dali import fn, pipeline_def, types

from dali_ba.bench.runner import evict_from_page_cache
from dali_ba.config import LoaderConfig
from dali_ba.dataset import scan_image_folder
from dali_ba.reader import Batch, ReadAhead

B = 32
DEFAULTS = LoaderConfig()  # the loader's reader threads and read-ahead


class ReadBatch:
    """Batch-mode callback for the parallel external source: the files of batch ``info.iteration``."""

    def __init__(self, files, order):
        self.files, self.order = files, order

    def __call__(self, info):
        rows = self.order[info.iteration * B : (info.iteration + 1) * B]
        if len(rows) < B:
            raise StopIteration
        return [np.fromfile(self.files[i], dtype=np.uint8) for i in rows]


def time_pipe(pipe, batches):
    pipe.build()
    start = time.perf_counter()
    for _ in range(batches):
        pipe.run()
    return batches * B / (time.perf_counter() - start)


def reader_threads(index, order, batches):
    reader = ReadAhead(index.read, threads=DEFAULTS.read_threads, depth=DEFAULTS.read_ahead)
    reader.start(Batch(n, order[n * B : (n + 1) * B]) for n in range(batches))

    @pipeline_def(batch_size=B, num_threads=2, device_id=None)
    def bytes_only():
        return fn.external_source(source=lambda: reader.take()[1], batch=True, dtype=types.UINT8, ndim=1)

    try:
        return time_pipe(bytes_only(), batches)
    finally:
        reader.close()


def parallel_source(index, order, batches):
    @pipeline_def(batch_size=B, num_threads=2, device_id=None, py_num_workers=2, py_start_method="spawn")
    def bytes_only():
        return fn.external_source(source=ReadBatch(index.files, order), batch=True, parallel=True,
                                  batch_info=True, dtype=types.UINT8, ndim=1)

    return time_pipe(bytes_only(), batches)


def main():
    from dali_ba.cli import default_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--batches", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    index = scan_image_folder(args.data_dir or default_dataset())
    rows: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        order = np.random.default_rng(round_).permutation(len(index))
        for cold in (True, False):
            for name, run in (("reader threads", reader_threads), ("DALI parallel external source", parallel_source)):
                if cold:
                    evict_from_page_cache(index.files)
                key = f"{name}, {'cold' if cold else 'warm'}"
                rows.setdefault(key, []).append(run(index, order, args.batches))
    print(f"B={B}, {args.batches} batches, files/s into DALI per round ({args.rounds} rounds)")
    for name, values in rows.items():
        print(f"  {name:40s} " + "  ".join(f"{v:7.0f}" for v in values))


if __name__ == "__main__":
    main()
