"""dali-ba over tar shards behind a URL with injected latency, against the same shards on disk.

    .venv/bin/python benchmarks/remote_reads.py [DATA_DIR] [--latency-ms 0,5,20,50] [-M 1,4] [--rounds 2]
        [--out benchmarks/results/remote-reads.json]

The shards are the bench's tar copy of DATA_DIR (the bench's ImageNet-like set by default),
sidecars included. They are served by a lean asyncio server (``--server aiohttp``: aiohttp's
static files), in a process of its own, that holds every response back by the given latency
before its first byte, as object stores do (this machine's kernel has no netem). The server shares
this machine's 2 cores with the loader, so its CPU per request is measured and reported. For each latency, dali-ba
at each M runs over the URL shards
and over the same shards on disk, alternately, ``--rounds`` times: steps/s (median of 5-step
windows over the timed steps), requests per effective image, the requests in flight
(``read_threads``, default settings otherwise), and the loader's CPU per unique image. B=32, 224 px, CPU, warm page cache.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path


def serve(root: str, port: int, delay_ms: float) -> None:
    """The lean server process: GET (with one byte range) and HEAD of static files, each response
    sent ``delay_ms`` after its request, on plain asyncio. It does the least a server can per
    request, so that on this 2-core machine it takes as little as it can from the loader beside it."""
    import asyncio

    loop = asyncio.new_event_loop()
    files: dict[str, tuple[int, int]] = {}  # path -> (fd, size)

    def open_file(path: str):
        if path not in files:
            full = os.path.realpath(os.path.join(root, path.lstrip("/")))
            if not full.startswith(os.path.realpath(root)) or not os.path.isfile(full):
                return None
            fd = os.open(full, os.O_RDONLY)
            files[path] = (fd, os.fstat(fd).st_size)
        return files[path]

    def respond(transport, head: bytes) -> None:
        if transport.is_closing():
            return
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
        found = open_file(path)
        if found is None:
            transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        fd, size = found
        start, end, status = 0, size - 1, "200 OK"
        if "range" in headers and method == "GET":
            first, last = headers["range"].split("=", 1)[1].split("-")
            start, end, status = int(first), min(int(last) if last else size - 1, size - 1), "206 Partial Content"
        length = end - start + 1
        extra = f"Content-Range: bytes {start}-{end}/{size}\r\n" if status.startswith("206") else ""
        transport.write(f"HTTP/1.1 {status}\r\nContent-Length: {length}\r\n{extra}ETag: \"{size}\"\r\n"
                        f"Accept-Ranges: bytes\r\n\r\n".encode())
        if method == "GET":
            transport.write(os.pread(fd, length, start))

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                loop.call_later(delay_ms / 1000, respond, self.transport, head)

    server = loop.run_until_complete(loop.create_server(Protocol, "127.0.0.1", port, backlog=1024))
    try:
        loop.run_forever()
    finally:
        server.close()


def serve_aiohttp(root: str, port: int, delay_ms: float) -> None:
    """The aiohttp server process: static files with ranges, each response after ``delay_ms``."""
    import asyncio

    from aiohttp import web

    @web.middleware
    async def latency(request, handler):
        await asyncio.sleep(delay_ms / 1000)
        return await handler(request)

    app = web.Application(middlewares=[latency])
    app.router.add_static("/", root)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class Server:
    """A latency server (``serve`` or ``serve_aiohttp``) in a process of its own; ``cpu_s()`` is the
    CPU time it has used."""

    def __init__(self, root: Path, delay_ms: float, kind: str = "lean"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(root), str(self.port), str(delay_ms)])
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _nginx(folder: Path):
    """The tests' nginx (``tests/test_remote.py``) serving ``folder``, with ``port`` and ``close()``."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from test_remote import Nginx

    server = Nginx(folder, Path(tempfile.mkdtemp())).start()
    server.close = server.stop
    return server


def measure(source: str, m: int, steps: int, warmup: int, server=None, **options) -> dict:
    from dali_ba import ParquetLoader, TarShardLoader

    make = ParquetLoader if source.endswith(".parquet") else TarShardLoader
    loader = make(source, batch_size=32, aug_repeats=m, device="cpu", seed=0, **options)
    batches = iter(loader)
    for _ in range(warmup):
        next(batches)
    store = loader.dataset.source.store
    requests0 = loader.io.requests
    times = []
    cpu0, server0 = time.process_time(), server.cpu_s() if server is not None else 0.0
    start = time.perf_counter()
    for _ in range(steps):
        try:
            next(batches)
        except StopIteration:
            batches = iter(loader)
            next(batches)
        now = time.perf_counter()
        times.append(now - start)
        start = now
    cpu_s = time.process_time() - cpu0
    server_cpu_s = server.cpu_s() - server0 if server is not None else None
    requests = loader.io.requests - requests0
    # Tar shards: the store's window of requests; Parquet: its reader threads, a row group each.
    plan = loader.dataset.source.read_plan(read_threads=loader.config.read_threads, read_ahead=loader.config.read_ahead,
                                           batch_size=loader.config.batch_size)
    in_flight = None if not store.remote else store.in_flight if plan.batched else plan.threads
    loader.close()
    windows = [5 / sum(times[k:k + 5]) for k in range(len(times) - 4)]
    return {"steps_per_s": statistics.median(windows), "effective_images_per_s": statistics.median(windows) * 32 * m,
            "requests_per_effective_image": requests / (steps * 32 * m),
            "loader_cpu_ms_per_image": 1000 * cpu_s / (steps * 32), "in_flight": in_flight,
            "server_cpu_ms_per_request": 1000 * server_cpu_s / requests if server_cpu_s is not None and requests else None}


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        kind, root, port, delay_ms = sys.argv[2:6]
        (serve if kind == "lean" else serve_aiohttp)(root, int(port), float(delay_ms))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--latency-ms", default="0,5,20,50")
    parser.add_argument("-M", default="1,4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--server", choices=["lean", "aiohttp", "nginx"], default="lean",
                        help="lean: plain asyncio, least CPU per request (default); aiohttp: its static files; "
                             "nginx: Debian's nginx, without injected latency (0 only)")
    parser.add_argument("--resample", choices=["auto", "dali", "torch"], default="auto",
                        help="the loader's resample option (where the CPU path makes the replicas)")
    parser.add_argument("--read-threads", type=int, default=None, help="the loader's read_threads (default: its own)")
    parser.add_argument("--read-ahead", type=int, default=2, help="the loader's read_ahead (default: its own, 2)")
    parser.add_argument("--source", choices=["tar", "parquet"], default="tar",
                        help="parquet: the bench's Parquet copy (10 row groups of 100), read with a cache of "
                             "--cache-groups row groups, with and without shuffle_window")
    parser.add_argument("--cache-groups", type=int, default=2,
                        help="parquet: row groups the store keeps (2: smaller than the data, as ImageNet is)")
    parser.add_argument("--shuffle-window", default="0,2", help="parquet: shuffle_window values (0: exact permutation)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.server == "nginx" and args.latency_ms.strip() != "0":
        parser.error("--server nginx injects no latency: pass --latency-ms 0")
    from dali_ba.bench.runner import parquet_copy, tar_copy
    from dali_ba.cli import default_dataset
    from dali_ba.sources import scan_image_folder

    if args.source == "tar":
        copy = tar_copy(scan_image_folder(args.data_dir or default_dataset()))
        pattern = f"train-{{000000..{len(set(copy.files)) - 1:06d}}}.tar"
        variants = {"": {}}
    else:
        copy = parquet_copy(scan_image_folder(args.data_dir or default_dataset()))
        pattern = f"train-{{00000..{len(set(copy.files)) - 1:05d}}}.parquet"
        variants = {f"shuffle_window={w}": dict(cache_groups=args.cache_groups, shuffle_window=w or None)
                    for w in map(int, args.shuffle_window.split(","))}
    folder = Path(copy.files[0]).parent
    rows = []
    for latency in map(float, args.latency_ms.split(",")):
        server = Server(folder, latency, args.server) if args.server != "nginx" else _nginx(folder)
        try:
            for (variant, extra), m in itertools.product(variants.items(), map(int, args.M.split(","))):
                runs = {"disk": [], "url": []}
                for _ in range(args.rounds):
                    options = dict(resample=args.resample, read_threads=args.read_threads, read_ahead=args.read_ahead, **extra)
                    runs["disk"].append(measure(str(folder / pattern), m, args.steps, args.warmup, **options))
                    runs["url"].append(measure(f"http://127.0.0.1:{server.port}/{pattern}", m, args.steps, args.warmup,
                                               server=server if hasattr(server, "cpu_s") else None, **options))
                disk = statistics.median(r["effective_images_per_s"] for r in runs["disk"])
                url = statistics.median(r["effective_images_per_s"] for r in runs["url"])
                row = {"source": args.source, "variant": variant, "latency_ms": latency, "M": m, "disk_eff_img_s": disk,
                       "url_eff_img_s": url, "url_over_disk": url / disk,
                       "requests_per_effective_image": runs["url"][0]["requests_per_effective_image"],
                       "in_flight": runs["url"][0]["in_flight"],
                       "loader_cpu_ms_per_image": {k: statistics.median(r["loader_cpu_ms_per_image"] for r in v)
                                                   for k, v in runs.items()},
                       "server_cpu_ms_per_request": runs["url"][0]["server_cpu_ms_per_request"], "runs": runs}
                rows.append(row)
                print(f"{args.source} {variant} latency {latency:4.0f} ms  M={m}  disk {disk:6.0f}  url {url:6.0f} eff img/s  "
                      f"url/disk {url / disk:.2f}  "
                      f"requests/eff img {row['requests_per_effective_image']:.3f}  in flight {row['in_flight']}  loader CPU ms/image "
                      f"disk {row['loader_cpu_ms_per_image']['disk']:.2f} url {row['loader_cpu_ms_per_image']['url']:.2f}  "
                      f"server CPU ms/request {row['server_cpu_ms_per_request'] or float('nan'):.3f}",
                      flush=True)
        finally:
            server.close()
    if args.out:
        from dali_ba.bench.runner import environment

        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "environment": environment().as_dict(), "rows": rows},
                                       indent=1) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # the server process inherits it: DALI's deprecation notes aside
    main()
