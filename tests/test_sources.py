"""The ``Source`` interface (``sources/base.py``): every source implements it, and says what its reads cost."""

import os

import numpy as np
import pytest

from dali_ba.sources import FileSource, Source, TarSource, index_tar_shards, scan_image_folder
from dali_ba.sources.tar import make_shards

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def sources(color_tree, tmp_path):
    """``{kind: index}`` of the 24 colour images: as a folder, as local tar shards, as tar shards behind a URL
    (fsspec's memory filesystem), and as Parquet files where pyarrow is installed."""
    root, _ = color_tree
    folder = scan_image_folder(root)
    made = make_shards(folder, tmp_path / "shards", shard_size=5)
    indexes = {"folder": folder, "tar": index_tar_shards(str(tmp_path / "shards" / "shard-*.tar"))}
    memory, at = fsspec.filesystem("memory"), f"/dali-ba-{tmp_path.name}"
    for path in made:
        for suffix in (".tar", ".idx", ".labels"):
            memory.pipe(f"{at}/{path.stem}{suffix}", path.with_suffix(suffix).read_bytes())
    indexes["tar behind a URL"] = index_tar_shards(f"memory://{at}/shard-*.tar")
    try:
        from dali_ba.sources.parquet import index_parquet, write_parquet

        write_parquet(folder, tmp_path / "parquet", rows_per_file=12, row_group_size=4, shuffle=False)
        indexes["parquet"] = index_parquet(str(tmp_path / "parquet" / "*.parquet"))
    except ImportError:
        pass
    yield indexes
    memory.rm(at, recursive=True)


def test_every_source_implements_the_interface_and_reads_the_same_images(sources):
    folder = sources["folder"]
    by_name = {folder.name(i).rsplit("/", 1)[-1].split(".")[0]: folder.read(i).tobytes() for i in range(len(folder))}
    for kind, index in sources.items():
        assert isinstance(index.source, Source), kind
        assert index.source.nbytes >= 0 and len(index) == 24
        for i in range(len(index)):
            data = index.read(i).tobytes()
            assert data in by_name.values(), f"{kind}: sample {i} is none of the images"
        batch = index.source.read_batch(np.arange(6))
        assert [a.tobytes() for a in batch] == [index.read(i).tobytes() for i in range(6)], kind


def test_each_read_says_what_storage_did(sources):
    for kind in ("folder", "tar", "tar behind a URL"):
        index = sources[kind]
        read = index.source.read(3)
        assert (read.requests, read.nbytes) == (1, read.data.nbytes), kind
        batch = index.source.read_batch(np.arange(5))
        assert (batch.requests, batch.nbytes) == (5, sum(a.nbytes for a in batch)), kind
    if "parquet" in sources:
        parquet = sources["parquet"].source
        parquet.clear()
        first, second = parquet.read(0), parquet.read(1)  # one row group of 4 rows
        assert first.requests == 1 and first.nbytes >= first.data.nbytes + second.data.nbytes
        assert (second.requests, second.nbytes) == (0, 0), "the row group was read already"


def test_a_source_says_how_to_keep_its_store_busy(sources):
    local = sources["tar"].source.read_plan(read_threads=None, read_ahead=2, batch_size=32)
    assert (local.threads, local.depth, local.batched) == (16, 2, False)
    remote = sources["tar behind a URL"].source.read_plan(read_threads=None, read_ahead=2, batch_size=32)
    assert remote.batched and remote.depth == 128 // 32 + 1, "enough batches ahead to fill 128 requests in flight"
    assert sources["folder"].source.read_plan(read_threads=4, read_ahead=3, batch_size=8).threads == 4
    assert isinstance(sources["folder"].source, FileSource) and isinstance(sources["tar"].source, TarSource)


def test_reads_of_missing_or_cut_files_name_them(sources, tmp_path):
    tar = sources["tar"]
    path = tar.files[4]  # the last sample of the first shard, which is cut before it
    with open(path, "r+b") as f:
        f.truncate(1024)
    with pytest.raises(OSError, match=rf"could not read sample '.*' in tar shard '{path}': expected \d+ bytes"):
        tar.read(4)
    folder = sources["folder"]
    victim = folder.files[2]
    os.rename(victim, tmp_path / "elsewhere.jpg")
    with pytest.raises(FileNotFoundError, match=os.path.basename(victim)):
        folder.read(2)
