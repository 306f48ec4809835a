"""The storage layer without a server: the in-flight window, failures, retries and pool sizing."""

import asyncio
import threading

import pytest

fsspec = pytest.importorskip("fsspec", reason="fsspec is the optional extra dali-ba[remote]")
from fsspec.asyn import AsyncFileSystem  # noqa: E402

import dali_ba.sources.remote as storage  # noqa: E402
from dali_ba.sources import StorageError, store_for  # noqa: E402
from dali_ba.sources.remote import RangeFile, RemoteStore  # noqa: E402


class SlowFS(AsyncFileSystem):
    """``slow://NAME``: NAME's bytes are ``bytes(range(256))`` repeated; every read takes 10 ms.
    Records the most reads in flight at once; ``fail`` maps an offset to the exception its reads raise."""

    protocol = "slow"
    cachable = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.now = self.most = self.calls = 0
        self.fail, self.fail_once = {}, {}
        self.info_failures = []  # raised by info, one a call, as fsspec's HTTP info does: FileNotFoundError from the cause

    async def _info(self, path, **kwargs):
        if self.info_failures:
            raise FileNotFoundError(path) from self.info_failures.pop(0)
        return {"name": path, "size": 4096, "type": "file", "ETag": '"v1"'}

    async def _cat_file(self, path, start=None, end=None, **kwargs):
        self.calls += 1
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.01)
            if start in self.fail:
                raise self.fail[start]
            if start in self.fail_once:
                raise self.fail_once.pop(start)
            return bytes(i % 256 for i in range(start, end))
        finally:
            self.now -= 1


@pytest.fixture
def slow(monkeypatch):
    fsspec.register_implementation("slow", SlowFS, clobber=True)
    monkeypatch.setattr(storage, "BACKOFF_S", 0.001)
    return RemoteStore("slow://data", in_flight=8)


def test_read_many_keeps_the_window_over_calls_from_several_threads(slow):
    ranges = [("slow://data", 300 * k, 50) for k in range(40)]
    results = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, slow.read_many(ranges))) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = [bytes(i % 256 for i in range(300 * k, 300 * k + 50)) for k in range(40)]
    assert all(results[n] == expected for n in range(3)), "every range, in the order asked"
    assert slow.fs.most == 8, "never more than in_flight at once, over the three calls together"
    assert slow.stats.requests == 120 and slow.stats.bytes == 120 * 50


def test_read_many_says_how_many_requests_a_batch_took_retries_included(slow):
    slow.fs.fail_once = {300: TimeoutError("slow"), 1200: ConnectionResetError("reset")}
    fetched = slow.read_many([("slow://data", 300 * k, 10) for k in range(6)])
    assert [bytes(f) for f in fetched] == [bytes(i % 256 for i in range(300 * k, 300 * k + 10)) for k in range(6)]
    assert fetched.requests == 8 and slow.stats.retries == 2


def test_read_many_retries_what_may_pass_and_names_the_range_that_never_does(slow):
    slow.fs.fail = {600: ConnectionResetError("reset by peer"), 900: PermissionError("denied")}
    with pytest.raises(StorageError, match=r"slow://data: access denied") as caught:
        slow.read_many([("slow://data", 300 * k, 10) for k in range(5)])
    assert caught.value.status == 403
    slow.fs.fail = {600: ConnectionResetError("reset by peer")}
    with pytest.raises(StorageError, match=r"could not read slow://data bytes 600-609 after 6 tries: ConnectionResetError"):
        slow.read_many([("slow://data", 300 * k, 10) for k in range(5)])
    assert slow.stats.retries >= 5


class Status(Exception):
    def __init__(self, status):
        super().__init__(f"HTTP {status}")
        self.status = status


def test_not_found_that_hides_a_503_is_retried_and_a_real_404_is_not(slow):
    slow.fs.info_failures = [Status(503), ConnectionResetError("reset")]
    assert slow.info("slow://data") == {"size": 4096, "version": "v1"} and slow.stats.retries == 2
    slow.fs.info_failures = [Status(404)]
    with pytest.raises(StorageError, match=r"slow://data does not exist \(404\)"):
        slow.info("slow://data")
    assert slow.stats.retries == 2


def test_a_range_file_serves_known_ranges_and_reads_the_rest_in_one_request_each(slow):
    f = RangeFile(slow, "slow://data", 4096, {1000: bytes(i % 256 for i in range(1000, 1100))})
    f.seek(1010)
    assert f.read(20) == bytes(i % 256 for i in range(1010, 1030)) and slow.stats.requests == 0
    f.seek(-6, 2)
    assert f.read(100) == bytes(i % 256 for i in range(4090, 4096)) and slow.stats.requests == 1, "cut at the end"
    assert f.read(10) == b"" and f.tell() == 4096


def test_http_and_s3_connection_pools_are_sized_to_the_window_unless_given():
    options = storage._pooled("s3://bucket/x.tar", {"key": "k"}, 96)
    assert options["config_kwargs"] == {"max_pool_connections": 96} and options["key"] == "k"
    mine = storage._pooled("s3://bucket/x.tar", {"config_kwargs": {"max_pool_connections": 7}}, 96)
    assert mine["config_kwargs"] == {"max_pool_connections": 7}
    assert storage._pooled("https://host/x.tar", {}, 96)["get_client"].keywords == {"limit": 96}
    assert storage._pooled("hf://datasets/a/b/x.parquet", {}, 96) == {}


def test_sources_of_one_store_only():
    with pytest.raises(ValueError, match="the shards mix local paths and URLs"):
        store_for(["/data/a.tar", "https://host/b.tar"], None, what="shards")
    with pytest.raises(ValueError, match="storage_options are for URLs .* but the parquet files are local paths"):
        store_for(["/data/a.parquet"], {"anon": True}, what="parquet files")


def test_a_store_without_async_reads_batches_on_threads_end_to_end(color_tree, tmp_path, monkeypatch):
    """fsspec's memory filesystem is synchronous, as the Hugging Face Hub's is: the same loader, on threads."""
    from collections import Counter

    from conftest import identify
    from dali_ba import TarShardLoader
    from dali_ba.sources import scan_image_folder
    from dali_ba.sources.tar import make_shards, sample_key

    root, truth = color_tree
    index = scan_image_folder(root)
    made = make_shards(index, tmp_path / "shards", shard_size=5)
    by_key = {sample_key(index, i): truth[index.files[i]] for i in range(len(index))}
    memory = fsspec.filesystem("memory")
    folder = f"/dali-ba-{tmp_path.name}"
    try:
        for path in made:
            for suffix in (".tar", ".idx", ".labels"):
                memory.pipe(f"{folder}/{path.stem}{suffix}", path.with_suffix(suffix).read_bytes())
        loader = TarShardLoader(f"memory://{folder}/shard-*.tar", batch_size=3, aug_repeats=2, image_size=16, device="cpu",
                                recipe="val", seed=1, num_threads=1, drop_last=False)
        assert not loader.dataset.source.store.fs.async_impl
        assert Counter(f for images, _ in loader for f in identify(images, by_key)) == {key: 2 for key in by_key}
        assert loader.io.requests == 24
    finally:
        memory.rm(folder, recursive=True)


def test_a_write_or_a_download_is_retried_and_a_store_that_cannot_write_says_so_at_once(tmp_path, slow, monkeypatch):
    memory = RemoteStore("memory://", attempts=3)
    monkeypatch.setattr(storage, "BACKOFF_S", 0.001)
    tries, pipe = [], memory.fs.pipe_file

    def reset_once(*args, **kwargs):
        tries.append(args[0])
        if len(tries) == 1:
            raise ConnectionResetError("reset by peer")
        return pipe(*args, **kwargs)

    monkeypatch.setattr(memory.fs, "pipe_file", reset_once)
    try:
        memory.write(f"memory://dali-ba-{tmp_path.name}/x.idx", b"sidecar")
        assert memory.stats.retries == 1 and memory.stats.requests == 2
        memory.download(f"memory://dali-ba-{tmp_path.name}/x.idx", tmp_path / "x.idx")
        assert (tmp_path / "x.idx").read_bytes() == b"sidecar"
    finally:
        memory.fs.rm(f"/dali-ba-{tmp_path.name}", recursive=True)
    with pytest.raises(StorageError, match=r"could not write slow://data/x\.idx: its store cannot"):
        slow.write("slow://data/x.idx", b"sidecar")  # SlowFS has no _pipe_file
    assert slow.stats.retries == 0
