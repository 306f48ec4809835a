"""Start-up at scale: compact indexes, sidecar indexes, a fast header walk, one builder per node.

The speed goals are measured in ``benchmarks/startup.py``; here the behaviour: what the fast paths
give is what the slow ones gave, and what they skip they skip.
"""

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time

import pytest
from click.testing import CliRunner

from dali_ba import shards as shards_module
from dali_ba.cli import main
from dali_ba.dataset import StringTable, read_file_list, scan_image_folder
from dali_ba.shards import index_tar_shards, labels_path, make_shards, sidecar_path, write_sidecar


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DALI_BA_CACHE", str(tmp_path / "cache"))


def write_tar(path, members, format=tarfile.PAX_FORMAT):
    with tarfile.open(path, "w", format=format) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


KEY_AND_EXTENSION = re.compile(r"^((?:.*/|)[^./][^.]*)\.([^/]*)$")  # WebDataset's base_plus_ext


def tarfile_index(path):
    """The index as tarfile and WebDataset's key rule give it (the reference for the fast paths)."""
    samples, labels = {}, {}
    with tarfile.open(path) as tar:
        for m in tar:
            match = KEY_AND_EXTENSION.match(m.name) if m.isfile() else None
            if match:
                key, ext = match.group(1), match.group(2).lower()
                if ext == "cls":
                    labels[key] = int(tar.extractfile(m).read())
                samples.setdefault(key, {})[ext] = m
    keys = list(samples)
    images = [next(samples[k][e] for e in shards_module.TAR_IMAGE_EXTENSIONS if e in samples[k]) for k in keys]
    return keys, [m.offset_data for m in images], [m.size for m in images], [labels[k] for k in keys]


def same(index, reference):
    return (list(index.keys), index.offsets.tolist(), index.sizes.tolist(), index.labels.tolist()) == tuple(reference)


LONG = "d" * 120 + "/" + "k" * 90  # past ustar's 100-byte name: a PAX path or a ustar prefix / GNU long name


def to_v7(path):
    """Rewrites a ustar tar's headers as the old v7 format (no magic), which tarfile cannot write."""
    with tarfile.open(path) as tar:
        starts = [m.offset for m in tar]
    data = bytearray(path.read_bytes())
    for at in starts:
        data[at + 257:at + 512] = bytes(255)
        data[at + 148:at + 156] = b" " * 8
        data[at + 148:at + 156] = b"%06o\0 " % sum(data[at:at + 512])
    path.write_bytes(bytes(data))


V7 = "v7"


@pytest.mark.parametrize("format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT, V7])
def test_the_header_walk_reads_what_tarfile_reads_in_every_format(tmp_path, format):
    members = {f"s{k}.jpg": b"\xff" * (k * 300 + 1) for k in range(5)} | {f"s{k}.cls": str(k).encode() for k in range(5)}
    members |= {"a/b.c/x.png": b"\x89" * 700, "a/b.c/x.cls": b"3", ".hidden.cls": b"1", "noext": b"x", "s0.json": b"{}"}
    if format in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        members |= {f"{LONG}.jpg": b"\xff" * 10, f"{LONG}.cls": b" 7\n", "ünï/cödé.jpg": b"\xff" * 3, "ünï/cödé.cls": b"2"}
    path = tmp_path / "shard.tar"
    write_tar(path, members, format=tarfile.USTAR_FORMAT if format == V7 else format)
    if format == V7:
        to_v7(path)
    walked = shards_module._samples(str(path), shards_module._walk_tar(str(path)))
    assert same(walked, tarfile_index(path))
    assert len(walked.keys) == (8 if format in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT) else 6)


def test_a_damaged_or_cut_shard_is_an_error_naming_it(tmp_path):
    path = tmp_path / "cut.tar"
    write_tar(path, {"a.jpg": b"\xff" * 5000, "a.cls": b"1"})
    data = path.read_bytes()
    path.write_bytes(data[:3000])
    with pytest.raises(ValueError, match=r"cut\.tar' is cut short: member 'a\.jpg' ends at byte"):
        index_tar_shards(str(path), use_cache=False)
    path.write_bytes(b"not a tar at all" * 64)
    with pytest.raises(ValueError, match=r"cut\.tar' is not a readable tar shard"):
        index_tar_shards(str(path), use_cache=False)


def test_the_sidecar_is_what_dalis_wds2idx_writes(tmp_path):
    wds2idx = pytest.importorskip("wds2idx")
    path = tmp_path / "shard.tar"
    write_tar(path, {f"k{k}.{ext}": b"\xff" * (k + 10) for k in range(20) for ext in ("jpg", "cls", "json")})
    ours = write_sidecar(path)
    with wds2idx.IndexCreator(str(path), str(tmp_path / "dali.idx"), verbose=False) as creator:
        creator.create_index()
    assert ours == sidecar_path(path) and ours.read_text() == (tmp_path / "dali.idx").read_text()


def test_an_index_from_the_sidecar_is_the_index_from_the_headers(tmp_path, monkeypatch):
    path = tmp_path / "shard.tar"
    write_tar(path, {f"k{k}.{ext}": (str(k % 4).encode() if ext == "cls" else b"\xff" * (k + 10)) for k in range(30)
                     for ext in ("cls", "png")})  # the label first: the uniform path either way round
    write_sidecar(path)
    read = []
    monkeypatch.setattr(shards_module, "_walk_tar", lambda p: read.append(p) or pytest.fail("the headers were read"))
    assert same(shards_module._read_tar_headers(str(path)), tarfile_index(path))
    monkeypatch.setattr(shards_module, "_uniform_sidecar", lambda *a: None)  # the general path too
    assert same(shards_module._read_tar_headers(str(path)), tarfile_index(path))


def test_a_sidecar_of_another_version_of_the_shard_is_ignored_with_a_warning(tmp_path):
    path = tmp_path / "shard.tar"
    write_tar(path, {f"k{k}.{ext}": (b"1" if ext == "cls" else b"\xff" * 900) for k in range(4) for ext in ("jpg", "cls")})
    write_sidecar(path)
    write_tar(path, {f"k{k}.{ext}": (b"2" if ext == "cls" else b"\xff" * (100 + k)) for k in range(4) for ext in ("jpg", "cls")})
    with pytest.warns(UserWarning, match="ignoring the sidecar index .*another version"):
        index = index_tar_shards(str(path), use_cache=False)
    assert same(index, tarfile_index(path))


def test_make_shards_writes_sidecars_and_index_shards_writes_them_for_others(color_tree, tmp_path):
    root, _ = color_tree
    made = make_shards(scan_image_folder(root), tmp_path / "s", shard_size=5)
    assert all(sidecar_path(p).exists() and labels_path(p).exists() for p in made)
    assert not list((tmp_path / "s").glob("*.tmp"))
    assert labels_path(made[0]).read_text().splitlines()[0] == "dali-ba-labels v1 5"
    for p in made:
        sidecar_path(p).unlink()
    labels_path(made[1]).unlink()
    pattern = str(tmp_path / "s" / "shard-{000000..000004}.tar")
    result = CliRunner().invoke(main, ["index-shards", pattern, "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "wrote 5 sidecar index(es); 0 shard(s) had one already" in result.output
    assert all(sidecar_path(p).exists() and labels_path(p).exists() for p in made)
    again = CliRunner().invoke(main, ["index-shards", pattern])
    assert "wrote 0 sidecar index(es); 5 shard(s) had one already" in again.output
    missing = CliRunner().invoke(main, ["index-shards", str(tmp_path / "nope-*.tar")])
    assert missing.exit_code == 2 and "matches no file" in missing.output


INDEXER = """
import json, os, sys, time
from dali_ba import shards
while not os.path.exists(sys.argv[2]):  # start all at once
    time.sleep(0.001)
if sys.argv[3] == "parquet":
    from dali_ba.parquet import index_parquet
    index = index_parquet(sys.argv[1], threads=2)
else:
    index = shards.index_tar_shards(sys.argv[1], threads=2)
print(json.dumps({"indexed": shards.INDEXED, "labels": index.labels.tolist()}))
"""


def index_together(pattern: str, processes: int, tmp_path, source: str = "tar") -> list[dict]:
    """What ``processes`` processes that share a cold index cache under ``tmp_path`` say after
    indexing ``pattern`` (tar shards, or ``source="parquet"`` files) at the same moment (``INDEXER``'s JSON)."""
    go = tmp_path / "go"
    env = dict(os.environ, DALI_BA_CACHE=str(tmp_path / "shared-cache"))
    procs = [subprocess.Popen([sys.executable, "-c", INDEXER, pattern, str(go), source], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    time.sleep(2)
    go.touch()
    outs = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    return outs


def test_processes_on_a_cold_cache_read_each_shard_once_between_them(tmp_path):
    for n in range(24):
        write_tar(tmp_path / f"s-{n:03d}.tar", {f"k{j}.{ext}": (str(j % 5).encode() if ext == "cls" else b"\xff" * 4000)
                                                for j in range(400) for ext in ("jpg", "cls")})
    outs = index_together(str(tmp_path / "s-{000..023}.tar"), 8, tmp_path)
    assert sum(out["indexed"]["walk"] + out["indexed"]["sidecar"] for out in outs) == 24, "each shard read once"
    assert all(out["labels"] == outs[0]["labels"] for out in outs) and len(outs[0]["labels"]) == 24 * 400


def test_a_builder_killed_mid_index_does_not_block_the_others(tmp_path):
    path = tmp_path / "s.tar"
    write_tar(path, {"a.jpg": b"\xff", "a.cls": b"1"})
    holder = subprocess.Popen([sys.executable, "-c", f"""
import fcntl, os, sys
from dali_ba.shards import _cache_path
cached = _cache_path({str(path)!r})
locks = cached.parent.with_name("tar-index-locks"); locks.mkdir(parents=True, exist_ok=True)
lock = open(locks / cached.with_suffix(".lock").name, "a"); fcntl.flock(lock, fcntl.LOCK_EX)
print("held", flush=True); sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert holder.stdout.readline().strip() == "held"
    holder.kill()  # dies holding the lock, having written nothing
    holder.wait()
    assert index_tar_shards(str(path)).labels.tolist() == [1]


def test_string_tables_are_sequences_of_the_strings_given():
    strings = ["/data/train/n1/a.JPEG", "/data/train/n1/b.JPEG", "/data/train/n2/c.jpg", "rel.png", "/ü/ñ.jpg", ""]
    table = StringTable.from_strings(strings)
    assert list(table) == strings and table == strings and table == tuple(strings) and table != strings[:-1]
    assert table[-1] == "" and table[1:3] == tuple(strings[1:3]) and len(table) == 6
    with pytest.raises(IndexError):
        table[6]
    repeated = StringTable.repeated(["a.tar", "b.tar"], [2, 1])
    assert list(repeated) == ["a.tar", "a.tar", "b.tar"] and repeated.nbytes < 200


def test_every_source_keeps_its_index_under_64_bytes_a_sample(tmp_path):
    folder = tmp_path / "data" / "train" / "n01440764"
    folder.mkdir(parents=True)
    jpeg = tmp_path / "one.jpg"
    jpeg.write_bytes(b"\xff\xd8")
    lines = []
    for k in range(5000):
        name = f"n01440764_{10000 + k}.JPEG"
        os.link(jpeg, folder / name)
        lines.append(f"n01440764/{name} 0\n")
    (tmp_path / "data" / "train" / "list.txt").write_text("".join(lines))
    write_tar(tmp_path / "s.tar", {f"n01440764_{10000 + k}.{ext}": (b"0" if ext == "cls" else b"\xff")
                                   for k in range(5000) for ext in ("jpg", "cls")})
    for index in (scan_image_folder(tmp_path / "data" / "train"), read_file_list(tmp_path / "data" / "train" / "list.txt"),
                  index_tar_shards(str(tmp_path / "s.tar"))):
        assert len(index) == 5000 and index.nbytes / len(index) <= 64, index.nbytes / len(index)


def test_file_list_paths_are_what_pathlib_joins(tmp_path):

    listed = ["a/b.jpg", "./c.jpg", "d//e.jpg", "f/./g.jpg", "/abs/h.jpg", "with space/i.jpg"]
    (tmp_path / "list.txt").write_text("".join(f"{p} {k}\n" for k, p in enumerate(listed)) + "# comment\n\n")
    index = read_file_list(tmp_path / "list.txt")
    assert list(index.files) == [str(tmp_path / p) for p in listed]
    assert index.labels.tolist() == list(range(len(listed)))
