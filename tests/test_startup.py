"""Start-up at scale: compact indexes, and one index builder per node.

The speed and memory goals are measured in ``benchmarks/startup.py``; here the behaviour: the
processes of a node that share a cache index each file once between them, and an index stays small.
"""

import json
import os
import subprocess
import sys
import time


from conftest import write_tar
from dali_ba.sources import read_file_list, scan_image_folder
from dali_ba.sources.tar import index_tar_shards


INDEXER = """
import json, os, sys, time
from dali_ba.sources import tar
while not os.path.exists(sys.argv[2]):  # start all at once
    time.sleep(0.001)
if sys.argv[3] == "parquet":
    from dali_ba.sources.parquet import index_parquet
    index = index_parquet(sys.argv[1], threads=2)
else:
    index = tar.index_tar_shards(sys.argv[1], threads=2)
print(json.dumps({"indexed": tar.INDEXED, "labels": index.labels.tolist()}))
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
