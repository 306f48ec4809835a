"""Tar shards read straight from an HTTP server (nginx, started here): exact epochs, errors named.

nginx serves ranges as object stores do; its access log counts the requests. The tests skip where
nginx is not installed (``.ci/run`` installs Debian's ``nginx-light``).
"""

import functools
import os
import re
import shutil
import sys
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from conftest import free_port, identify, small_loader, wait_for_port
from dali_ba import TarShardLoader
from dali_ba.sources import scan_image_folder
from dali_ba.sources.tar import make_shards, sample_key, sidecar_path
from dali_ba.sources import StorageError
from dali_ba.sources.remote import RemoteStore

NGINX = shutil.which("nginx") or (shutil.which("nginx", path="/usr/sbin"))
pytestmark = pytest.mark.skipif(NGINX is None, reason="needs nginx (apt-get install nginx-light; .ci/run installs it)")


class Nginx:
    """An nginx serving ``root`` on a free loopback port, stopped and started at will."""

    def __init__(self, root, work):
        self.root, self.work = root, work
        self.port = free_port()
        (work / "nginx.conf").write_text(f"""
user root;
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
    uwsgi_temp_path {work}; scgi_temp_path {work};
    server {{ listen 127.0.0.1:{self.port}; root {root}; location / {{ }} }}
}}
""")
        self.process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.process = subprocess.Popen([NGINX, "-c", str(self.work / "nginx.conf"), "-p", str(self.work)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port, 5, lambda: f"(nginx: {self.process.stderr.read().decode()[-500:]})")
        return self

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def requests(self) -> int:
        log = self.work / "access.log"
        return len(log.read_text().splitlines()) if log.exists() else 0


def serve(tmp_path):
    """nginx over ``tmp_path/www`` (to be filled by the caller), with its own work folder."""
    (tmp_path / "nginx").mkdir()
    return Nginx(tmp_path / "www", tmp_path / "nginx").start()


@pytest.fixture
def served(color_tree, tmp_path, monkeypatch):
    """``(server, pattern, truth)``: the 24 colour images as 5 tar shards (with sidecars) behind nginx."""
    root, truth = color_tree
    index = scan_image_folder(root)
    make_shards(index, tmp_path / "www" / "shards", shard_size=5)
    by_key = {sample_key(index, i): truth[index.files[i]] for i in range(len(index))}
    server = serve(tmp_path)
    yield server, f"{server.url}/shards/shard-{{000000..000004}}.tar", by_key
    server.stop()


make = functools.partial(small_loader, TarShardLoader, batch_size=3, aug_repeats=2, recipe="val", seed=1, num_threads=1,
                         drop_last=False)


def test_an_epoch_over_http_is_every_sample_once_at_one_request_each(served):
    server, pattern, truth = served
    loader = make(pattern)
    assert len(loader.dataset) == 24
    before = server.requests()
    seen = Counter(f for images, _ in loader for f in identify(images, truth))
    assert seen == {key: 2 for key in truth}, "each sample once, as its M=2 replicas"
    assert server.requests() - before == 24, "one ranged request per image, none for the replicas"
    assert (loader.io.requests, loader.io.images, loader.io.requests_per_image) == (24, 48, 0.5), "1/M requests per image"
    assert loader.io.bytes_per_image == loader.io.bytes_read / 48 > 0


def test_a_state_saved_mid_epoch_resumes_over_http_exactly_once(served):
    server, pattern, truth = served
    loader = make(pattern)
    epoch = iter(loader)
    first = [f for _ in range(3) for f in identify(next(epoch)[0], truth)]
    state = loader.state_dict()
    again = make(pattern, seed=9)
    again.load_state_dict(state)
    rest = [f for images, _ in again for f in identify(images, truth)]
    assert Counter(first + rest) == {key: 2 for key in truth}


def test_shards_without_sidecars_are_indexed_by_one_pass_each(served, caplog):
    server, pattern, truth = served
    for sidecar in (server.root / "shards").glob("*.idx"):
        sidecar.unlink()
    with caplog.at_level("WARNING"):
        loader = make(pattern)
    assert "by reading all of it" in caplog.text and "index-shards" in caplog.text
    assert Counter(f for images, _ in loader for f in identify(images, truth)) == {key: 2 for key in truth}


def test_a_shard_is_indexed_with_three_requests_or_one_more_per_label_without_its_labels_sidecar(served, caplog):
    server, pattern, truth = served
    make(pattern)
    assert server.requests() == 5 * 3, "per shard: its size, its .idx, its .labels"
    for labels in (server.root / "shards").glob("*.labels"):
        labels.unlink()
    (server.root / "shards" / "shard-000000.labels").write_text("dali-ba-labels v1 2\n0\n1\n")  # 5 label members there
    before = server.requests()
    with caplog.at_level("WARNING"), pytest.warns(UserWarning, match=r"ignoring the labels sidecar .*shard-000000\.labels: it holds 2"):
        loader = make_uncached(pattern)
    assert server.requests() - before == 5 * 3 + 24, "then one request per label"
    assert "24 labels took one request each" in caplog.text and "index-shards" in caplog.text
    assert Counter(f for images, _ in loader for f in identify(images, truth)) == {key: 2 for key in truth}


def make_uncached(pattern):
    """``make(pattern)`` over an index built without the index cache."""
    from dali_ba.loader import BatchAugmentLoader
    from dali_ba.sources.tar import index_tar_shards

    return BatchAugmentLoader(index_tar_shards(pattern, use_cache=False), batch_size=3, aug_repeats=2, image_size=16,
                              device="cpu", recipe="val", seed=1, num_threads=1, drop_last=False)


@pytest.mark.parametrize("extra", [(), ("json",)], ids=["image-and-label", "with-a-json-member"])
def test_an_index_over_http_is_the_index_from_the_headers(extra, tmp_path, monkeypatch):
    """The common sidecar (an image and a label a sample) is parsed column by column, others line
    by line (``extra`` members); either way, and the line-by-line path for the common one too, the
    index is what tarfile reads, labels from the labels sidecar."""
    import dali_ba.sources.tar.sidecars as sidecars
    from dali_ba.sources.tar import index_tar_shards, write_sidecar
    from conftest import same_tar_index as same, tarfile_index, write_tar

    path = tmp_path / "www" / "shard.tar"
    path.parent.mkdir()
    write_tar(path, {f"d/k{k}.{ext}": (str(k % 4).encode() if ext == "cls" else b"\xff" * (k + 10)) for k in range(30)
                     for ext in ("cls", "png", *extra)})  # the label first
    write_sidecar(path)
    server = serve(tmp_path)
    try:
        columns = []
        uniform = sidecars.uniform_columns
        monkeypatch.setattr(sidecars, "uniform_columns", lambda *a: columns.append(uniform(*a)) or columns[-1])
        assert same(index_tar_shards(f"{server.url}/shard.tar", use_cache=False), tarfile_index(path))
        assert (columns[-1] is not None) == (not extra), "the column path takes the common sidecar, and only it"
        monkeypatch.setattr(sidecars, "uniform_columns", lambda *a: None)
        assert same(index_tar_shards(f"{server.url}/shard.tar", use_cache=False), tarfile_index(path))
    finally:
        server.stop()


def test_index_shards_over_http_names_the_sidecar_it_could_not_write(served):
    from click.testing import CliRunner

    from dali_ba.cli import main

    server, pattern, _ = served
    for sidecar in (server.root / "shards").glob("*.labels"):
        sidecar.unlink()
    result = CliRunner().invoke(main, ["index-shards", pattern])
    assert result.exit_code == 2
    assert "indexing 5 of 5 shard(s)" in result.output
    assert re.search(r"could not write http://127\.0\.0\.1:\d+/shards/shard-00000\d\.labels: HTTP 405", result.output), result.output
    assert not list((server.root / "shards").glob("*.labels")), "nothing written"


def test_an_index_is_cached_by_url_and_version(served):
    server, pattern, _ = served
    make(pattern)
    before = server.requests()
    make(pattern)
    assert server.requests() - before == 5, "one metadata request per shard, nothing else"


def test_a_missing_shard_is_named_before_the_first_batch(served):
    server, _, _ = served
    with pytest.raises(StorageError, match=r"http://127\.0\.0\.1:\d+/shards/shard-000005\.tar does not exist \(404\)"):
        make(f"{server.url}/shards/shard-{{000004..000005}}.tar")


def test_credentials_never_appear_in_an_error(served):
    server, _, _ = served
    url = f"http://alice:s3cr3t-token@127.0.0.1:{server.port}/shards/missing.tar"
    with pytest.raises(StorageError) as caught:
        make(url)
    assert "s3cr3t-token" not in str(caught.value) and "alice" not in str(caught.value)
    assert "missing.tar does not exist" in str(caught.value)


def test_a_server_that_stops_mid_epoch_is_an_error_then_the_rest_resumes_exactly_once(served, monkeypatch):
    import dali_ba.sources.remote as storage

    monkeypatch.setattr(storage, "BACKOFF_S", 0.01)
    server, pattern, truth = served
    loader = make(pattern, read_threads=3)  # 3 requests in flight: 2 batches read ahead, not the whole epoch
    epoch = iter(loader)
    first = [f for _ in range(2) for f in identify(next(epoch)[0], truth)]
    state = loader.state_dict()
    server.stop()
    with pytest.raises((StorageError, OSError), match=r"could not read http://127\.0\.0\.1:\d+/shards/shard-\d+\.tar bytes \d+-\d+"):
        for _ in epoch:
            pass
    server.start()
    again = make(pattern)
    again.load_state_dict(state)
    rest = [f for images, _ in again for f in identify(images, truth)]
    assert Counter(first + rest) == {key: 2 for key in truth}


def test_a_body_cut_short_is_read_again(served, monkeypatch):
    server, _, _ = served
    store = RemoteStore(server.url)
    real = store._cat
    calls = []

    def cut_once(url, start, end):
        data = real(url, start, end)
        calls.append(len(data))
        return data[: len(data) // 2] if len(calls) == 1 else data

    monkeypatch.setattr(store, "_cat", cut_once)
    url = f"{server.url}/shards/shard-000000.tar"
    assert store.read(url, 512, 100) == (server.root / "shards" / "shard-000000.tar").read_bytes()[512:612]
    assert calls == [100, 100] and store.stats.retries == 1
    assert sidecar_path(server.root / "shards" / "shard-000000.tar").exists()


def test_local_paths_import_nothing_new_and_refuse_storage_options(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import sys, dali_ba; print('fsspec' in sys.modules, 'aiohttp' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
    (tmp_path / "x.tar").touch()
    with pytest.raises(ValueError, match="storage_options are for URLs"):
        TarShardLoader(str(tmp_path / "x.tar"), storage_options={"key": "k"})


def test_an_epoch_through_503s_and_dropped_connections_is_every_sample_once(served, monkeypatch):
    """10% of requests answered 503, 2% cut mid-body (never more than twice in a row): retries absorb them."""
    import dali_ba.sources.remote as storage
    from faulty_proxy import FaultyProxy

    monkeypatch.setattr(storage, "BACKOFF_S", 0.01)
    server, pattern, truth = served
    proxy = FaultyProxy(server.port, unavailable=0.10, dropped=0.02, seed=2)
    try:
        loader = make(pattern.replace(server.url, proxy.url))
        seen = Counter(f for _ in range(2) for images, _ in loader for f in identify(images, truth))
        assert seen == {key: 4 for key in truth}, "two epochs, each sample once per epoch, as its 2 replicas"
        assert proxy.counts["503"] > 0 and proxy.counts["dropped"] > 0, proxy.counts
        assert loader.dataset.source.store.stats.retries > 0  # (fsspec itself answers some HEAD failures with a GET)
    finally:
        proxy.close()


# -- Parquet files behind a URL ---------------------------------------------------------------------


@pytest.fixture
def served_parquet(color_tree, tmp_path, monkeypatch):
    """``(server, pattern, truth)``: the 24 colour images in 2 Parquet files of 3 row groups of 4 rows, behind nginx."""
    pytest.importorskip("pyarrow", reason="pyarrow is the optional extra dali-ba[parquet]")
    from dali_ba.sources.parquet import write_parquet

    root, truth = color_tree
    write_parquet(scan_image_folder(root), tmp_path / "www" / "pq", rows_per_file=12, row_group_size=4)
    server = serve(tmp_path)
    yield server, f"{server.url}/pq/train-{{00000..00001}}.parquet", truth
    server.stop()


def make_parquet(files, **kw):
    from dali_ba import ParquetLoader

    options = dict(batch_size=5, aug_repeats=2, image_size=16, device="cpu", recipe="val", seed=3, num_threads=1,
                   drop_last=False)
    options.update(kw)
    return ParquetLoader(files, **options)


def test_parquet_over_http_is_indexed_from_footers_and_labels_then_read_a_row_group_a_request(served_parquet):
    server, pattern, truth = served_parquet
    loader = make_parquet(pattern)
    assert server.requests() == 2 * (1 + 1 + 3), "per file: its size, its footer, the label chunk of each of 3 row groups"
    assert loader.classes == ["class_0", "class_1", "class_2"]
    before = server.requests()
    seen = Counter()
    for images, labels in loader:
        found = identify(images, truth)
        assert labels.tolist() == [truth[f][0] for f in found]
        seen.update(found)
    assert seen == {f: 2 for f in truth}, "each row once, as its 2 replicas"
    assert server.requests() - before == 6, "one ranged request per row group, its image column only"
    assert loader.dataset.source.groups_read == 6
    assert (loader.io.requests, loader.io.images) == (6, 48), "the index's requests are not the epoch's"


def test_a_parquet_index_is_cached_by_url_and_version(served_parquet):
    server, pattern, truth = served_parquet
    make_parquet(pattern)
    before = server.requests()
    loader = make_parquet(pattern, shuffle_window=1)
    assert server.requests() - before == 2, "one metadata request per file, nothing else"
    assert Counter(f for images, _ in loader for f in identify(images, truth)) == {f: 2 for f in truth}
    entries = sorted((Path(os.environ["DALI_BA_CACHE"]) / "parquet-index").iterdir())
    assert len(entries) == 2
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # cut short, as by a full disk
    before = server.requests()
    loader = make_parquet(pattern)
    assert server.requests() - before == 2 + (1 + 3), "the damaged entry's file is indexed again"
    assert Counter(f for images, _ in loader for f in identify(images, truth)) == {f: 2 for f in truth}


def test_a_parquet_state_saved_mid_epoch_resumes_over_http_exactly_once(served_parquet):
    server, pattern, truth = served_parquet
    loader = make_parquet(pattern)
    epoch = iter(loader)
    first = [f for _ in range(2) for f in identify(next(epoch)[0], truth)]
    again = make_parquet(pattern, seed=9)
    again.load_state_dict(loader.state_dict())
    assert Counter(first + [f for images, _ in again for f in identify(images, truth)]) == {f: 2 for f in truth}


def test_parquet_urls_that_are_missing_not_parquet_or_lack_a_column_are_named(served_parquet):
    server, pattern, _ = served_parquet
    (server.root / "pq" / "notes.parquet").write_bytes(b"not a parquet file at all")
    with pytest.raises(StorageError, match=r"/pq/train-00009\.parquet does not exist \(404\)"):
        make_parquet(f"{server.url}/pq/train-00009.parquet")
    with pytest.raises(ValueError, match=r"/pq/notes\.parquet' is not a parquet file"):
        make_parquet(f"{server.url}/pq/notes.parquet")
    with pytest.raises(ValueError, match=r"/pq/train-00000\.parquet' has no column 'jpg' \(image_column\); its columns are: image, label"):
        make_parquet(f"{server.url}/pq/train-00000.parquet", image_column="jpg")


def test_processes_sharing_a_cache_fetch_each_remote_sidecar_once_between_them(served, tmp_path):
    from test_startup import index_together

    server, pattern, _ = served
    outs = index_together(pattern, 4, tmp_path)
    assert sum(out["indexed"]["sidecar"] for out in outs) == 5, "each shard indexed once by the 4 processes"
    fetched = Counter(line.split('"')[1].split()[1].rsplit(".", 1)[1] for line in
                      (server.work / "access.log").read_text().splitlines() if line.split('"')[1].startswith("GET"))
    assert fetched["idx"] == 5 and fetched["labels"] == 5, fetched
    assert all(out["labels"] == outs[0]["labels"] for out in outs) and len(outs[0]["labels"]) == 24


def test_processes_sharing_a_cache_read_each_parquet_footer_and_label_chunk_once_between_them(served_parquet, tmp_path):
    from test_startup import index_together

    server, pattern, truth = served_parquet
    outs = index_together(pattern, 4, tmp_path, source="parquet")
    gets = [line for line in (server.work / "access.log").read_text().splitlines() if line.split('"')[1].startswith("GET")]
    assert len(gets) == 2 * (1 + 3), "per file, once for the 4 processes: its footer and the label chunk of each row group"
    assert all(out["labels"] == outs[0]["labels"] for out in outs) and sorted(outs[0]["labels"]) == sorted(
        label for label, _ in truth.values())


@pytest.mark.parametrize("kind", ["tar", "parquet"])
def test_an_epoch_begun_on_4_ranks_over_http_finishes_on_3_exactly_once(kind, request):
    from test_elastic import flat, ranks, step_together

    if kind == "tar":
        server, pattern, truth = request.getfixturevalue("served")
        make = lambda **kw: TarShardLoader(pattern, **kw)  # noqa: E731
    else:
        from dali_ba import ParquetLoader

        server, pattern, truth = request.getfixturevalue("served_parquet")
        make = lambda **kw: ParquetLoader(pattern, **kw)  # noqa: E731
    before = ranks(make, 4, drop_last=False)
    first = flat(step_together(before, truth, steps=1))
    after = ranks(make, 3, drop_last=False, seed=99)
    for loader in after:
        loader.load_state_dict(before[1].state_dict())
    assert Counter(first + flat(step_together(after, truth))) == Counter(list(truth)), "each sample of the epoch once"


def test_the_bench_reads_a_url_and_counts_its_requests(served, color_tree, tmp_path):
    import json

    from click.testing import CliRunner

    from dali_ba.cli import main

    server, pattern, _ = served
    root, _ = color_tree
    pattern = pattern.replace("http://", "http://alice:s3cr3t-token@")  # nginx ignores them; the exports must not hold them
    result = CliRunner().invoke(main, ["bench", str(root), "--url", pattern, "--loaders", "dali-ba-url", "-M", "1,2", "-b", "2",
                                       "--steps", "3", "--warmup", "1", "--image-size", "32", "--workers", "1",
                                       "--export-json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    rows = {r["aug_repeats"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert rows[2]["loader"] == "dali-ba-url" and rows[2]["requests_per_effective_image"] == 0.5, "one request per image, M=2"
    assert rows[1]["requests_per_effective_image"] == 1.0
    assert "index of the --url source" in result.output
    assert "s3cr3t-token" not in result.output and "s3cr3t-token" not in (tmp_path / "r.json").read_text()


def test_parquet_through_503s_and_dropped_connections_is_every_row_once(served_parquet, monkeypatch):
    import dali_ba.sources.remote as storage
    from faulty_proxy import FaultyProxy

    monkeypatch.setattr(storage, "BACKOFF_S", 0.01)
    server, pattern, truth = served_parquet
    proxy = FaultyProxy(server.port, unavailable=0.10, dropped=0.02, seed=2)
    try:
        loader = make_parquet(pattern.replace(server.url, proxy.url), cache_groups=1)  # every batch rereads its row groups
        seen = Counter(f for _ in range(2) for images, _ in loader for f in identify(images, truth))
        assert seen == {f: 4 for f in truth}, "two epochs, each row once per epoch, as its 2 replicas"
        assert proxy.counts["503"] > 0 and proxy.counts["dropped"] > 0, proxy.counts
    finally:
        proxy.close()
