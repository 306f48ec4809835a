"""The tar walker (``sources/tar/walker.py``): every member from the headers, as tarfile reads them."""

import tarfile

import pytest

from conftest import same_tar_index, tarfile_index, write_tar
from dali_ba.sources.tar import index_tar_shards
from dali_ba.sources.tar.members import group_samples
from dali_ba.sources.tar.walker import walk_tar

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
    walked = group_samples(str(path), walk_tar(str(path)))
    assert same_tar_index(walked, tarfile_index(path))
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
