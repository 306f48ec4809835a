"""Start-up at ImageNet scale: index time, index memory and first batch of every source.

    .venv/bin/python benchmarks/startup.py [--samples 1281167] [--classes 1000] [--shard-size 1000]
        [--sources folder,list,shards-first,shards-idx,shards-copies,shards-cached,url-first,url-cached]
        [--latency-ms 20] [--index-threads N] [--drop-caches] [--out results/startup.json]

Builds, once, under ``cache_dir()/startup-<samples>``, a data set of tiny JPEGs (so that only
the index costs) in every layout: an ImageFolder tree and a ``path label`` list of hard links to
1000 distinct files, and tar shards that are hard links to two template shards, with DALI
``wds2idx`` sidecar indexes (``.idx``) beside a second set of links. Each source is then measured
in a fresh process with an empty index cache (``shards-cached`` reuses the cache
``shards-first`` left): the time to build the index, the bytes the index holds (every array and
string it references, counted once), the process's RSS growth, and the time from the index to the
first batch of a CPU loader (B=32, M=1, 64 px). The page cache is warm (the links share a few
files), as in the issue's table. ``shards-copies`` reads shards and sidecars that are each a file
of their own (copies, not links: 3.3 GB at ImageNet's size), as a real data set is; with
``--drop-caches`` (root) the OS page cache is dropped before each source's process starts, a
fresh node's case (the Python, torch and DALI files it imports too).

``url-first`` and ``url-cached`` read the shards with sidecars over HTTP from
``remote_reads.py``'s lean server, each response held back ``--latency-ms`` (an object store's
first byte): ``url-first`` on an empty index cache (3 requests a shard: its size, ``.idx`` and
``.labels``), ``url-cached`` on the cache it left (1 request a shard: its size and version).
``--index-threads`` sets ``index_tar_shards``'s ``threads`` (default: its own).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

SOURCES = ("folder", "list", "shards-first", "shards-idx", "shards-copies", "shards-cached", "url-first", "url-cached")


def build(root: Path, samples: int, classes: int, shard_size: int) -> None:
    """Makes every layout under ``root`` (skipped where ``root/.complete`` exists)."""
    from PIL import Image

    if (root / ".complete").exists():
        return
    t0 = time.perf_counter()
    jpegs = root / "jpegs"
    jpegs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    blobs = []
    for k in range(1000):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
        blobs.append(buf.getvalue())
        (jpegs / f"{k:04d}.jpg").write_bytes(blobs[-1])
    per_class = -(-samples // classes)
    names = [f"n{c:08d}" for c in range(classes)]
    lines = []
    count = 0
    for c, name in enumerate(names):
        folder = root / "folder" / name
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(min(per_class, samples - count)):
            target = folder / f"{name}_{n}.JPEG"
            os.link(jpegs / f"{(c + n) % 1000:04d}.jpg", target)
            lines.append(f"{name}/{name}_{n}.JPEG {c}\n")
        count += min(per_class, samples - count)
    (root / "folder" / "train.txt").write_text("".join(lines))
    print(f"folder and list: {samples} samples in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    # Two template shards (full, and the last one's remainder), hard-linked to make every shard.
    def template(path: Path, size: int) -> None:
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for n in range(size):
                key = f"{names[n % classes]}_{n:07d}"
                for ext, data in (("jpg", blobs[n % 1000]), ("cls", str(n % classes).encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size, info.mtime = len(data), 0
                    tar.addfile(info, io.BytesIO(data))

    from dali_ba.sources.tar import write_sidecar

    full, rest = divmod(samples, shard_size)
    count = full + (1 if rest else 0)
    for kind in ("plain", "idx"):
        (root / kind).mkdir(exist_ok=True)
    template(root / "template-full.tar", shard_size)
    write_sidecar(root / "template-full.tar")
    if rest:
        template(root / "template-rest.tar", rest)
        write_sidecar(root / "template-rest.tar")
    for k in range(count):
        source = root / ("template-rest" if rest and k == count - 1 else "template-full")
        for kind in ("plain", "idx"):
            os.link(source.with_suffix(".tar"), root / kind / f"train-{k:06d}.tar")
        os.link(source.with_suffix(".idx"), root / "idx" / f"train-{k:06d}.idx")
        os.link(source.with_suffix(".labels"), root / "idx" / f"train-{k:06d}.labels")
    (root / ".complete").write_text("")
    print(f"all layouts: {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def build_copies(root: Path) -> None:
    """``root/copies``: the ``idx`` layout with every shard and sidecar a file of its own (once)."""
    import shutil

    copies = root / "copies"
    if (copies / ".complete").exists():
        return
    t0 = time.perf_counter()
    copies.mkdir(exist_ok=True)
    for path in sorted((root / "idx").iterdir()):
        shutil.copyfile(path, copies / path.name)
    (copies / ".complete").write_text("")
    print(f"copies: {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def deep_bytes(index) -> int:
    """Bytes the index holds: its arrays and strings, each object counted once (shared ones once)."""
    seen: set[int] = set()

    def size(obj) -> int:
        if obj is None or id(obj) in seen:
            return 0
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            return obj.nbytes + sys.getsizeof(obj) - (obj.nbytes if obj.base is None and obj.flags.owndata else 0)
        if isinstance(obj, (tuple, list)):
            return sys.getsizeof(obj) + sum(size(item) for item in obj)
        if isinstance(obj, dict):
            return sys.getsizeof(obj) + sum(size(k) + size(v) for k, v in obj.items())
        if hasattr(obj, "__slots__"):
            return sys.getsizeof(obj) + sum(size(getattr(obj, name)) for name in obj.__slots__)
        return sys.getsizeof(obj)

    # Today's index keeps a tar shard's offsets, sizes and keys in its source; before, in itself.
    names = ("files", "labels", "classes", "class_to_idx", "group_starts", "offsets", "sizes", "keys")
    source = getattr(index, "source", None)
    held = sum(size(getattr(index, name, None)) for name in names)
    return held + sum(size(getattr(source, name, None)) for name in ("offsets", "sizes", "keys"))


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(source: str, root: Path, url: str | None = None, threads: int | None = None) -> dict:
    """One source, in this (fresh) process (``url``: where ``root/idx`` is served, for the URL sources)."""
    import gc

    from dali_ba import BatchAugmentLoader
    # The names every version has (``--baseline`` runs older checkouts): dali-ba 0.1's modules.
    from dali_ba.dataset import read_file_list, scan_image_folder
    from dali_ba.shards import index_tar_shards

    gc.collect()
    rss0 = rss_mib()
    start = time.perf_counter()
    if source == "folder":
        index = scan_image_folder(root / "folder")
    elif source == "list":
        index = read_file_list(root / "folder" / "train.txt")
    elif source.startswith("url"):
        count = len(list((root / "idx").glob("train-*.tar")))
        options = {} if threads is None else {"threads": threads}
        index = index_tar_shards(f"{url}/train-{{000000..{count - 1:06d}}}.tar", **options)
    else:
        layout = {"shards-idx": "idx", "shards-copies": "copies"}.get(source, "plain")
        index = index_tar_shards(str(root / layout / "train-*.tar"), **({} if threads is None else {"threads": threads}))
    index_s = time.perf_counter() - start
    gc.collect()
    rss1 = rss_mib()
    held = deep_bytes(index)
    start = time.perf_counter()
    loader = BatchAugmentLoader(index, batch_size=32, aug_repeats=1, image_size=64, device="cpu", num_threads=2)
    next(iter(loader))
    first = time.perf_counter() - start
    getattr(loader, "close", lambda: None)()  # dali-ba before 0.1's close() (the baseline runs)
    return {"source": source, "samples": len(index), "index_s": round(index_s, 2), "index_bytes": held,
            "index_bytes_per_sample": round(held / len(index), 1), "rss_growth_mib": round(rss1 - rss0, 1),
            "first_batch_s": round(first, 2), "rss_before_index_mib": round(rss0, 1), "rss_after_mib": round(rss_mib(), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1_281_167)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--latency-ms", type=float, default=20.0, help="url sources: the server's first-byte latency")
    parser.add_argument("--index-threads", type=int, help="shard sources: index_tar_shards's threads (default: its own)")
    parser.add_argument("--drop-caches", action="store_true", help="drop the OS page cache before each source (root)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--baseline", type=Path, help="measure with the dali_ba package in this checkout instead "
                        "(an older commit, e.g. a `git worktree`): the same data, side by side")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.root, args.url, args.index_threads)))
        return
    from dali_ba.sources.cache import cache_dir

    root = cache_dir() / f"startup-{args.samples}"
    build(root, args.samples, args.classes, args.shard_size)
    if "shards-copies" in args.sources.split(","):
        build_copies(root)
    index_cache = root / "index-cache"
    subprocess.run(["rm", "-rf", str(index_cache)], check=True)
    sources = args.sources.split(",")
    for source in sources:
        if source not in SOURCES:
            parser.error(f"unknown source {source!r}; choose from {', '.join(SOURCES)}")
    server = None
    if any(source.startswith("url") for source in sources):
        from remote_reads import Server

        server = Server(root / "idx", args.latency_ms)
    rows = []
    try:
        for source in sources:
            env = dict(os.environ, DALI_BA_CACHE=str(index_cache))
            if args.baseline:
                env["PYTHONPATH"] = str(args.baseline)
            command = [sys.executable, __file__, "--measure", source, "--root", str(root)]
            if source.startswith("url"):
                command += ["--url", f"http://127.0.0.1:{server.port}"]
            if args.index_threads:
                command += ["--index-threads", str(args.index_threads)]
            if args.drop_caches:
                subprocess.run(["sync"], check=True)
                Path("/proc/sys/vm/drop_caches").write_text("3\n")
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{source} failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{source:14s} {r['samples']:>9d} samples  index {r['index_s']:6.2f} s  {r['index_bytes_per_sample']:6.1f} "
                  f"B/sample (RSS {r['rss_before_index_mib']:.0f} -> +{r['rss_growth_mib']:.0f} MiB)  first batch "
                  f"{r['first_batch_s']:.2f} s  RSS then {r['rss_after_mib']:.0f} MiB", flush=True)
    finally:
        if server is not None:
            server.close()
    if args.out:
        args.out.write_text(json.dumps({"samples": args.samples, "command": " ".join(sys.argv), "git": _git(args.baseline),
                                        "page_cache": "dropped before each source" if args.drop_caches else "warm",
                                        "results": rows}, indent=1) + "\n")


def _git(baseline: Path | None) -> str:
    where = baseline or Path(__file__).parent
    git = lambda *args: subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True).stdout.strip()  # noqa: E731
    return git("rev-parse", "--short", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


if __name__ == "__main__":
    main()
