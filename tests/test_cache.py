"""Build once, cache on disk, one builder per node (``sources/cache.py``), the helper every cache uses."""

import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import write_tar
from dali_ba.sources import cache
from dali_ba.sources.tar import index_tar_shards


def test_an_entry_is_named_by_its_label_and_everything_it_depends_on(tmp_path):
    one = cache.entry("tar-index", "train-000000.tar", "/data/train-000000.tar", 100, 7, suffix=".npz")
    assert one.parent == tmp_path / "cache" / "tar-index" and one.name.startswith("train-000000.tar-")
    assert one.suffix == ".npz" and one == cache.entry("tar-index", "train-000000.tar", "/data/train-000000.tar", 100, 7,
                                                       suffix=".npz")
    assert one != cache.entry("tar-index", "train-000000.tar", "/data/train-000000.tar", 100, 8, suffix=".npz")
    assert "/" not in cache.entry("decode-probe", "region-NVIDIA H200/x", "k").name


def test_an_entry_is_built_once_and_read_after(tmp_path):
    built = []
    path = cache.entry("things", "a", 1, suffix=".txt")

    def build():
        built.append(1)
        return "made"

    def load(p):
        return p.read_text() or None

    for _ in range(3):
        assert cache.built_once(path, build, load=load, save=path.write_text, name="a") == "made"
    assert built == [1]
    path.write_text("")  # damaged: load says None
    assert cache.built_once(path, build, load=load, save=path.write_text, name="a") == "made" and built == [1, 1]


def test_threads_that_want_the_same_entry_build_it_once(tmp_path):
    path = cache.entry("things", "b", suffix=".txt")
    built, results = [], []

    def build():
        built.append(1)
        time.sleep(0.2)
        return "made"

    def one():
        results.append(cache.built_once(path, build, load=lambda p: p.read_text() or None, save=path.write_text, name="b"))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert built == [1] and results == ["made"] * 4


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    folder = cache.entry("datasets", "tiny", 1)

    def broken(partial):
        (partial / "half.jpg").write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.folder_built_once(folder, broken, name="tiny")
    assert not folder.exists() and list(folder.parent.iterdir()) == [], "no half folder left behind"

    def write(partial):
        (partial / "whole.jpg").write_bytes(b"x")

    assert cache.folder_built_once(folder, write, name="tiny") == folder
    assert [p.name for p in folder.iterdir()] == ["whole.jpg"]
    assert cache.folder_built_once(folder, lambda partial: pytest.fail("built twice"), name="tiny") == folder


def test_a_cache_that_cannot_be_written_is_warned_of_and_built_without(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("DALI_BA_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="could not use the cache .*DALI_BA_CACHE"):
        assert cache.built_once(cache.entry("things", "c"), lambda: 5, load=lambda p: None, save=None, name="c") == 5


def test_a_builder_killed_mid_build_does_not_block_the_others(tmp_path):
    path = tmp_path / "s.tar"
    write_tar(path, {"a.jpg": b"\xff", "a.cls": b"1"})
    holder = subprocess.Popen([sys.executable, "-c", f"""
import fcntl, os, sys
from dali_ba.sources.cache import lock_path
from dali_ba.sources.tar.index import cache_entry
lock = lock_path(cache_entry({str(path)!r})); lock.parent.mkdir(parents=True, exist_ok=True)
lock = open(lock, "a"); fcntl.flock(lock, fcntl.LOCK_EX)
print("held", flush=True); sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert holder.stdout.readline().strip() == "held"
    holder.kill()  # dies holding the lock, having written nothing
    holder.wait()
    assert index_tar_shards(str(path)).labels.tolist() == [1]


