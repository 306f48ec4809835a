"""The client's CPU per ranged request, against nginx: what an image costs at M=1 behind a URL.

    .venv/bin/python benchmarks/remote_request_cost.py [--rounds 3]

Reads the first 1000 images of the bench's tar copy, 32 ranges at a time (a batch), each way in
turn (a different one first each round), ``--rounds`` times:

- ``read_many``: ``RemoteStore.read_many``, what the loader does (fsspec's event loop, aiohttp);
- ``cat_ranges``: fsspec's own ``_cat_ranges`` on the same filesystem, without our window and checks;
- ``http.client``: the standard library on 32 threads, one connection each (a floor for Python);
- ``pread``: the same bytes from the shards on disk (what the URL is compared with).

Prints the process's CPU time per request (median of the rounds, and each round), and wall time.
"""

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from fsspec.asyn import sync  # noqa: E402
from test_remote import Nginx  # noqa: E402

from dali_ba.bench.runner import tar_copy  # noqa: E402
from dali_ba.cli import default_dataset  # noqa: E402
from dali_ba.sources import scan_image_folder  # noqa: E402
from dali_ba.sources.remote import RemoteStore  # noqa: E402

BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()

    copy = tar_copy(scan_image_folder(default_dataset()))
    folder = Path(copy.files[0]).parent
    tar = copy.source
    images = range(min(args.images, len(copy)))
    ranges = [(Path(copy.files[i]).name, int(tar.offsets[i]), int(tar.sizes[i])) for i in images]
    batches = [ranges[b : b + BATCH] for b in range(0, len(ranges), BATCH)]
    server = Nginx(folder, Path(tempfile.mkdtemp())).start()
    try:
        store = RemoteStore(server.url)
        connections = threading.local()

        def read_many(batch):
            store.read_many([(f"{server.url}/{name}", offset, size) for name, offset, size in batch])

        def cat_ranges(batch):
            sync(store.fs.loop, store.fs._cat_ranges, [f"{server.url}/{name}" for name, _, _ in batch],
                 [offset for _, offset, _ in batch], [offset + size for _, offset, size in batch])

        def get(item):
            name, offset, size = item
            if not hasattr(connections, "http"):
                connections.http = http.client.HTTPConnection("127.0.0.1", server.port)
            connections.http.request("GET", f"/{name}", headers={"Range": f"bytes={offset}-{offset + size - 1}"})
            return connections.http.getresponse().read()

        with ThreadPoolExecutor(BATCH) as pool:
            def threads(batch):
                list(pool.map(get, batch))

            files = {}

            def pread(batch):
                for name, offset, size in batch:
                    fd = files.get(name) or files.setdefault(name, os.open(folder / name, os.O_RDONLY))
                    os.pread(fd, size, offset)

            ways = {"read_many": read_many, "cat_ranges": cat_ranges, "http.client": threads, "pread": pread}
            for way in ways.values():  # connections open, pages cached
                way(batches[0])
            cpu = {name: [] for name in ways}
            wall = {name: [] for name in ways}
            names = list(ways)
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[: r % len(names)]:  # each way first in turn
                    way = ways[name]
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    for batch in batches:
                        way(batch)
                    cpu[name].append((time.process_time() - cpu0) / len(ranges) * 1e3)
                    wall[name].append(time.perf_counter() - wall0)
            for fd in files.values():
                os.close(fd)
    finally:
        server.stop()
    print(f"{len(ranges)} ranges, {BATCH} at a time, {args.rounds} rounds; nginx on the same cores")
    for name in ways:
        rounds = " ".join(f"{ms:.3f}" for ms in cpu[name])
        print(f"{name:12s} CPU ms/request {statistics.median(cpu[name]):.3f} (rounds {rounds})  "
              f"wall s {statistics.median(wall[name]):.2f}")


if __name__ == "__main__":
    main()
