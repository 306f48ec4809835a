"""Tar shards and Parquet files read from S3: moto's standalone server (as s3fs's own tests use), started here.

The tests skip where ``moto[server]`` or ``s3fs`` is missing (the test extra installs both).
"""

import subprocess
import sys
import time
from collections import Counter

import pytest

pytest.importorskip("s3fs", reason="s3fs is the optional extra dali-ba[s3]")
pytest.importorskip("moto.server", reason="moto[server] is in the test extra")

from conftest import free_port, identify, wait_for_port  # noqa: E402
from dali_ba import TarShardLoader  # noqa: E402
from dali_ba.sources import scan_image_folder  # noqa: E402
from dali_ba.sources.tar import make_shards, sample_key  # noqa: E402
from dali_ba.sources import StorageError  # noqa: E402

SECRET = "wJalrXUtnFEMI-never-print-me"


class Moto:
    """moto's S3 server on a free loopback port, in a process of its own; ``auth`` checks credentials
    (every request needs a known key, so any key of ours is refused with 403)."""

    def __init__(self, tmp_path, *, auth: bool = False):
        self.port = free_port()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MOTO_PORT": str(self.port)}
        if auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        self.log = open(tmp_path / f"moto-{self.port}.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 15, lambda: "(moto's server)")

    @property
    def options(self) -> dict:
        return {"key": "AKIAEXAMPLE", "secret": SECRET, "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{self.port}"}}

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = Moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def bucket(moto, color_tree, tmp_path, monkeypatch):
    """``(options, truth)``: the 24 colour images as 5 tar shards with sidecars and as 2 Parquet files, in a new bucket."""
    import s3fs

    _no_aws_environment(monkeypatch)
    root, truth = color_tree
    index = scan_image_folder(root)
    make_shards(index, tmp_path / "up" / "shards", shard_size=5)
    by_key = {sample_key(index, i): truth[index.files[i]] for i in range(len(index))}
    fs = s3fs.S3FileSystem(**moto.options)
    name = f"data-{tmp_path.name.lower().replace('_', '-')[-30:]}"
    fs.mkdir(name)
    fs.put(str(tmp_path / "up" / "shards") + "/", f"{name}/shards/", recursive=True)
    return name, moto.options, by_key, truth, tmp_path, root


def _no_aws_environment(monkeypatch):
    """Credentials of the tests' own only; the region that moto's buckets take by default."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_tar_shards_on_s3_give_every_sample_once_at_one_request_each(bucket):
    name, options, by_key, _, _, _ = bucket
    loader = TarShardLoader(f"s3://{name}/shards/shard-{{000000..000004}}.tar", storage_options=options, batch_size=3,
                            aug_repeats=2, image_size=16, device="cpu", recipe="val", seed=1, num_threads=1, drop_last=False)
    stats = loader.dataset.source.store.stats
    before = stats.requests
    seen = Counter(f for images, _ in loader for f in identify(images, by_key))
    assert seen == {key: 2 for key in by_key}
    assert stats.requests - before == 24 and stats.retries == 0


def test_parquet_on_s3_gives_every_row_once(bucket):
    pytest.importorskip("pyarrow", reason="pyarrow is the optional extra dali-ba[parquet]")
    import s3fs

    from dali_ba import ParquetLoader
    from dali_ba.sources.parquet import write_parquet

    name, options, _, truth, tmp_path, root = bucket
    write_parquet(scan_image_folder(root), tmp_path / "up" / "pq", rows_per_file=12, row_group_size=4)
    s3fs.S3FileSystem(**options).put(str(tmp_path / "up" / "pq") + "/", f"{name}/pq/", recursive=True)
    loader = ParquetLoader(f"s3://{name}/pq/train-*.parquet", storage_options=options, batch_size=5, aug_repeats=2,
                           image_size=16, device="cpu", recipe="val", seed=1, num_threads=1, drop_last=False)
    assert Counter(f for images, _ in loader for f in identify(images, truth)) == {f: 2 for f in truth}


def test_index_shards_writes_the_sidecars_of_shards_on_s3_beside_them(bucket):
    import s3fs

    from dali_ba.sources.tar import INDEXED, index_tar_shards, write_sidecars

    name, options, by_key, _, _, _ = bucket
    fs = s3fs.S3FileSystem(**options)
    fs.rm([f"{name}/shards/shard-{k:06d}.{ext}" for k in range(5) for ext in ("idx", "labels")])
    fs.invalidate_cache()
    fs.pipe(f"{name}/shards/shard-000002.labels", b"a stale labels sidecar, rewritten with its .idx")
    pattern = f"s3://{name}/shards/shard-*.tar"
    written = write_sidecars(pattern, storage_options=options)
    assert written == [f"s3://{name}/shards/shard-{k:06d}.idx" for k in range(5)]
    assert write_sidecars(pattern, storage_options=options) == [], "each shard has both now"
    fs.invalidate_cache()
    assert fs.cat(f"{name}/shards/shard-000002.labels").startswith(b"dali-ba-labels v1 5\n")
    before = INDEXED["sidecar"]
    index = index_tar_shards(pattern, storage_options=options, use_cache=False)
    assert INDEXED["sidecar"] - before == 5, "indexed from the sidecars written"
    assert index.source.store.stats.requests == 5 * 3 + 1, "a listing, then per shard its size, .idx and .labels"
    assert sorted(index.source.keys) == sorted(by_key) and [by_key[k][0] for k in index.source.keys] == index.labels.tolist()


def test_a_missing_object_on_s3_is_named(bucket):
    name, options, _, _, _, _ = bucket
    with pytest.raises(StorageError, match=rf"s3://{name}/shards/shard-000009\.tar does not exist \(404\)"):
        TarShardLoader(f"s3://{name}/shards/shard-000009.tar", storage_options=options)


def test_a_forbidden_bucket_is_named_at_once_and_the_secret_never_shown(tmp_path, caplog, monkeypatch):
    _no_aws_environment(monkeypatch)
    server = Moto(tmp_path, auth=True)
    try:
        started = time.perf_counter()
        with caplog.at_level("DEBUG"), pytest.raises(StorageError, match=r"s3://locked/shard-000000\.tar: access denied") as caught:
            TarShardLoader("s3://locked/shard-000000.tar", storage_options=server.options)
        assert caught.value.status == 403
        assert time.perf_counter() - started < 20, "403 is not retried"
        assert SECRET not in str(caught.value) and SECRET not in caplog.text
    finally:
        server.stop()
