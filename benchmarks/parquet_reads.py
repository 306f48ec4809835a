"""What reading Parquet costs when the data set is larger than the store's row-group cache.

    .venv/bin/python benchmarks/parquet_reads.py [DATA_DIR] [--rounds 3] [--steps 20]

``dali-ba bench``'s data set (1000 images, 10 row groups of 100 in its Parquet copy) fits in the
store's default cache of 96 row groups, so the bench cannot show what ImageNet-sized sets see:
there the exact permutation touches a new row group for almost every sample. This script makes
the store's cache smaller than the data (2 row groups) and times dali-ba at M=4 with the exact
permutation and with ``shuffle_window`` (2 row groups per window), beside the default cache, from
a cold page cache each time. It prints steps/s and the image-column bytes read from storage per
effective image, against the bytes of the images themselves.
"""

from __future__ import annotations

import statistics
import time

from common import parse_args

from dali_ba import ParquetLoader
from dali_ba.bench.runner import evict_from_page_cache, parquet_copy
from dali_ba.sources import scan_image_folder

B, M, SIZE = 32, 4, 224
VARIANTS = {
    "default cache (96 row groups, all of the data)": dict(cache_groups=96),
    "cache of 2 row groups, exact permutation": dict(cache_groups=2),
    "cache of 2 row groups, shuffle_window=2": dict(cache_groups=2, shuffle_window=2),
}


def run(files: str, steps: int, **options) -> tuple[float, float, float]:
    """``(steps/s, storage bytes per effective image, image bytes per effective image)`` over ``steps`` timed steps."""
    loader = ParquetLoader(files, batch_size=B, aug_repeats=M, image_size=SIZE, device="cpu", seed=0, **options)
    source = loader.dataset.source
    batches = iter(loader)
    next(batches)  # the pipeline is built and warm; the source's cache starts empty below
    source.clear()
    evict_from_page_cache(dict.fromkeys(loader.files))
    read0, fed0 = loader.io.bytes_read, loader.io.encoded_bytes
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    elapsed = time.perf_counter() - start
    images = steps * B * M
    return steps / elapsed, (loader.io.bytes_read - read0) / images, (loader.io.encoded_bytes - fed0) / images


def main():
    args = parse_args(__doc__, (("--rounds",), dict(type=int, default=3)), (("--steps",), dict(type=int, default=20)))
    copy = parquet_copy(scan_image_folder(args.data_dir))
    files = sorted(set(copy.files))
    print(f"{len(copy)} images in {len(files)} Parquet files, {len(copy.group_starts) - 1} row groups; B={B}, M={M}, "
          f"{SIZE} px, CPU, cold page cache; per round: steps/s | KiB read per effective image (images' own KiB)")
    rows = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, options in VARIANTS.items():
            rows[name].append(run(files, args.steps, **options))
    for name, values in rows.items():
        cells = "  ".join(f"{s:5.2f} | {r / 1024:6.1f} ({f / 1024:4.1f})" for s, r, f in values)
        print(f"  {name:48s} {cells}   median steps/s {statistics.median(v[0] for v in values):.2f}")


if __name__ == "__main__":
    main()
