"""One tar-shard index built in this process: its time, the bytes it holds, and the RSS it costs.

    .venv/bin/python benchmarks/index_probe.py LAYOUT [--threads N] [--cache] [--no-trim]

``LAYOUT`` is a folder of ``benchmarks/startup.py``'s data set (``copies``, ``idx``, ``plain``
under ``cache_dir()/startup-1281167``). Without ``--cache`` the index is built from the shards
(``use_cache=False``), with it from the index cache (built first if empty). The RSS growth is
given twice: as the build leaves it, and after ``malloc_trim(0)`` where the library's own
``release_freed_memory`` did not run (``--no-trim`` skips it, to see what it returns). Used for
the per-change figures of benchmarks/README.md, start-up at ImageNet scale.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import time

from startup import deep_bytes, rss_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("layout")
    parser.add_argument("--samples", type=int, default=1_281_167)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--cache", action="store_true", help="read the index cache (filled first if empty)")
    parser.add_argument("--no-trim", action="store_true", help="keep the freed memory the library returns")
    args = parser.parse_args()
    import dali_ba.sources.index as index_module
    from dali_ba.sources.cache import cache_dir
    from dali_ba.sources.tar import index_tar_shards

    if args.no_trim:
        index_module._MALLOC_TRIM = False
    pattern = str(cache_dir() / f"startup-{args.samples}" / args.layout / "train-*.tar")
    options = {"use_cache": args.cache, **({"threads": args.threads} if args.threads else {})}
    gc.collect()
    before = rss_mib()
    start = time.perf_counter()
    index = index_tar_shards(pattern, **options)
    seconds = time.perf_counter() - start
    gc.collect()
    built = rss_mib()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    trimmed = rss_mib()
    n = len(index)
    print(f"{args.layout} threads={args.threads or 'default'} cache={args.cache} trim={not args.no_trim}: index "
          f"{seconds:.2f} s, holds {deep_bytes(index) / n:.1f} B a sample, RSS +{(built - before) * 2**20 / n:.1f} B a "
          f"sample (+{(trimmed - before) * 2**20 / n:.1f} after malloc_trim)")


if __name__ == "__main__":
    main()
