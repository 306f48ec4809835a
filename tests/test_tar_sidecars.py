"""Sidecar indexes (``sources/tar/sidecars.py``): DALI's ``.idx`` and our ``.labels``, read and written."""

import os

import pytest
from click.testing import CliRunner

from conftest import same_tar_index, tarfile_index, write_tar
from dali_ba.cli import main
from dali_ba.sources import scan_image_folder
from dali_ba.sources.tar import index as tar_index
from dali_ba.sources.tar import index_tar_shards, labels_path, make_shards, sidecar_path, sidecars, write_sidecar


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
    monkeypatch.setattr(tar_index, "walk_tar", lambda p: read.append(p) or pytest.fail("the headers were read"))
    assert same_tar_index(tar_index.read_tar_headers(str(path)), tarfile_index(path))
    monkeypatch.setattr(sidecars, "uniform_columns", lambda *a: None)  # the general path too
    assert same_tar_index(tar_index.read_tar_headers(str(path)), tarfile_index(path))


def test_a_sidecar_of_another_version_of_the_shard_is_ignored_with_a_warning(tmp_path):
    path = tmp_path / "shard.tar"
    write_tar(path, {f"k{k}.{ext}": (b"1" if ext == "cls" else b"\xff" * 900) for k in range(4) for ext in ("jpg", "cls")})
    write_sidecar(path)
    write_tar(path, {f"k{k}.{ext}": (b"2" if ext == "cls" else b"\xff" * (100 + k)) for k in range(4) for ext in ("jpg", "cls")})
    with pytest.warns(UserWarning, match="ignoring the sidecar index .*another version"):
        index = index_tar_shards(str(path), use_cache=False)
    assert same_tar_index(index, tarfile_index(path))


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


def test_with_both_sidecars_a_local_shard_is_indexed_without_reading_its_members(tmp_path, monkeypatch):
    path = tmp_path / "shard.tar"
    write_tar(path, {f"k{k}.{ext}": (str(k % 3).encode() if ext == "cls" else b"\xff" * (50 + k)) for k in range(40)
                     for ext in ("jpg", "cls")})
    write_sidecar(path)
    reads = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: reads.append(n) or real(fd, n, at))
    assert same_tar_index(tar_index.read_tar_headers(str(path)), tarfile_index(path))
    assert reads == [512, 512], "the two tar headers checked, no label member read"
    labels_path(path).unlink()
    reads.clear()
    assert same_tar_index(tar_index.read_tar_headers(str(path)), tarfile_index(path))
    assert len(reads) == 40 + 2, "without .labels, each label member is read from the tar"


def test_a_labels_sidecar_that_does_not_fit_is_ignored_with_a_warning(tmp_path):
    path = tmp_path / "shard.tar"
    write_tar(path, {f"k{k}.{ext}": (b"1" if ext == "cls" else b"\xff" * 30) for k in range(5) for ext in ("jpg", "cls")})
    write_sidecar(path)
    labels_path(path).write_text("dali-ba-labels v1 2\n1\n1\n")
    with pytest.warns(UserWarning, match=r"ignoring the labels sidecar .*2 labels, the sidecar index lists 5"):
        index = index_tar_shards(str(path), use_cache=False)
    assert same_tar_index(index, tarfile_index(path))
