"""CPU per ranged request on the client, three ways, against nginx: where remote reads spend.

    .venv/bin/python benchmarks/remote_request_cost.py

1000 image ranges of the bench's tar copy, twice each way: 64 threads calling
``RemoteStore.read`` (what the loader does), fsspec's ``_cat_ranges`` 32 ranges per call, and
plain ``http.client`` on 64 threads with a connection each. Prints the process CPU time per
request and the wall time.
"""
import http.client
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
from dali_ba.dataset import scan_image_folder  # noqa: E402
from dali_ba.storage import RemoteStore  # noqa: E402

copy = tar_copy(scan_image_folder(default_dataset()))
folder = Path(copy.files[0]).parent
server = Nginx(folder, Path(tempfile.mkdtemp())).start()
try:
    n = 1000
    urls = [f"{server.url}/{Path(copy.files[i]).name}" for i in range(n)]
    offs = [int(copy.offsets[i]) for i in range(n)]; sizes = [int(copy.sizes[i]) for i in range(n)]
    store = RemoteStore(urls[0])
    store.read(urls[0], offs[0], sizes[0])
    for trial in range(2):
        c0, t0 = time.process_time(), time.perf_counter()
        with ThreadPoolExecutor(64) as pool:
            list(pool.map(lambda k: store.read(urls[k], offs[k], sizes[k]), range(n)))
        print("threads x read: cpu ms/req %.3f wall %.2f s" % ((time.process_time()-c0)/n*1e3, time.perf_counter()-t0))
        c0, t0 = time.process_time(), time.perf_counter()
        for b in range(0, n, 32):
            out = sync(store.fs.loop, store.fs._cat_ranges, urls[b:b+32], offs[b:b+32], [o+s for o,s in zip(offs[b:b+32], sizes[b:b+32])])
        print("cat_ranges per 32: cpu ms/req %.3f wall %.2f s" % ((time.process_time()-c0)/n*1e3, time.perf_counter()-t0))
        c0, t0 = time.process_time(), time.perf_counter()
        conns = {}

        def get(k):
            tid = threading.get_ident()
            c = conns.get(tid)
            if c is None:
                c = conns[tid] = http.client.HTTPConnection("127.0.0.1", server.port)
            c.request("GET", "/" + Path(copy.files[k]).name, headers={"Range": f"bytes={offs[k]}-{offs[k]+sizes[k]-1}"})
            return c.getresponse().read()

        with ThreadPoolExecutor(64) as pool:
            list(pool.map(get, range(n)))
        print("http.client threads: cpu ms/req %.3f wall %.2f s" % ((time.process_time()-c0)/n*1e3, time.perf_counter()-t0))
finally:
    server.stop()
