"""Tar shards and file lists: the same epochs, shards, resume and error naming as ImageFolder."""

import functools
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections import Counter

import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import identify, small_loader, textured
from dali_ba import DecodeError, FileListLoader, SkippedFileWarning, TarShardLoader, expand_shards, index_tar_shards
from dali_ba.cli import main
from dali_ba.sources import read_file_list, scan_image_folder
from dali_ba.sources.tar import make_shards, sample_key


@pytest.fixture
def color_shards(color_tree, tmp_path):
    """``(pattern, truth)``: the 24 colour images in 5 shards; truth is keyed by sample key."""
    root, truth = color_tree
    index = scan_image_folder(root)
    make_shards(index, tmp_path / "shards", shard_size=5, prefix="train")
    by_key = {sample_key(index, i): truth[index.files[i]] for i in range(len(index))}
    return str(tmp_path / "shards" / "train-{000000..000004}.tar"), by_key


make = functools.partial(small_loader, TarShardLoader, batch_size=4, aug_repeats=2, recipe="val")


def epoch_keys(loader, truth):
    return [key for images, _ in loader for key in identify(images, truth)]


def write_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def jpeg(colour=(200, 40, 120), seed=0):
    buffer = io.BytesIO()
    Image.fromarray(textured(colour, 24, 24, seed)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


# -- writing and indexing ---------------------------------------------------------------------


def test_make_shards_keeps_every_image_byte_identical_with_its_label(color_tree, tmp_path):
    root, _ = color_tree
    folder = scan_image_folder(root)
    make_shards(folder, tmp_path / "s", shard_size=5)
    shards = index_tar_shards(str(tmp_path / "s" / "*.tar"))
    assert len(shards) == len(folder) == 24
    original = {sample_key(folder, i): (open(folder.files[i], "rb").read(), folder.labels[i]) for i in range(len(folder))}
    for i in range(len(shards)):
        data, label = original[shards.key(i)]
        assert shards.read(i).tobytes() == data and shards.labels[i] == label


def test_make_shards_cli_prints_the_pattern_to_read_them_back(color_tree, tmp_path):
    root, _ = color_tree
    result = CliRunner().invoke(main, ["make-shards", str(root), str(tmp_path / "out"), "--shard-size", "10"])
    assert result.exit_code == 0, result.output
    assert "wrote 3 shard(s), 24 samples, 3 classes" in result.output
    pattern = result.output.strip().rsplit(" ", 1)[1]
    assert len(index_tar_shards(pattern)) == 24


def test_make_shards_cli_explains_a_bad_source(tmp_path):
    result = CliRunner().invoke(main, ["make-shards", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "nowhere" in result.output and "does not exist" in result.output


def test_brace_ranges_and_globs_name_the_same_shards(color_shards):
    pattern, _ = color_shards
    braces = expand_shards(pattern)
    assert [os.path.basename(p) for p in braces] == [f"train-00000{k}.tar" for k in range(5)]
    assert expand_shards(pattern.replace("{000000..000004}", "*")) == braces
    assert expand_shards([braces[0], braces[1]]) == braces[:2]


def test_missing_shard_and_empty_glob_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tar shard '.*train-000002\.tar' does not exist"):
        expand_shards(str(tmp_path / "train-{000002..000003}.tar"))
    with pytest.raises(FileNotFoundError, match=r"matches no file"):
        expand_shards(str(tmp_path / "*.tar"))
    with pytest.raises(TypeError, match="shards must be a path"):
        expand_shards(42)


def test_index_is_cached_and_rebuilt_when_a_shard_changes(tmp_path, monkeypatch):
    shard = tmp_path / "a.tar"
    write_tar(shard, {"x.jpg": jpeg(), "x.cls": b"1"})
    assert index_tar_shards(str(shard)).labels.tolist() == [1]
    import dali_ba.sources.tar.index as tar_index

    def no_reading(path):
        raise AssertionError(f"{path} was indexed again")

    monkeypatch.setattr(tar_index, "read_tar_headers", no_reading)
    assert index_tar_shards(str(shard)).labels.tolist() == [1], "the cached index is used"
    monkeypatch.undo()
    write_tar(shard, {"x.jpg": jpeg(), "x.cls": b"2", "y.jpg": jpeg(), "y.cls": b"0"})
    os.utime(shard, ns=(1, 10**18))  # a changed shard: new size and mtime
    assert index_tar_shards(str(shard)).labels.tolist() == [2, 0]


INDEXER = """
import json, os, sys, time, warnings
os.getpid = lambda: 4242  # as in containers on different hosts of one cluster: the same small pid
from dali_ba.sources.tar import index_tar_shards
while not os.path.exists(sys.argv[2]):  # start all at once
    time.sleep(0.001)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    index = index_tar_shards(sys.argv[1], threads=4)
print(json.dumps({"keys": list(index.source.keys), "offsets": index.source.offsets.tolist(), "labels": index.labels.tolist(),
                  "warnings": [str(w.message) for w in caught]}))
"""


def test_processes_indexing_the_same_shards_at_once_share_one_valid_cache(tmp_path, monkeypatch):
    for n in range(40):
        write_tar(tmp_path / f"s-{n:03d}.tar", {f"k{n}_{j}.jpg": b"\xff" * (50 + j) for j in range(20)}
                  | {f"k{n}_{j}.cls": str(j % 7).encode() for j in range(20)})
    pattern = str(tmp_path / "s-{000..039}.tar")
    truth = index_tar_shards(pattern, use_cache=False)
    go = tmp_path / "go"
    env = dict(os.environ, DALI_BA_CACHE=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", INDEXER, pattern, str(go)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    time.sleep(3)  # every process imported and waits
    go.touch()
    results = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err[-2000:]
        index = json.loads(out)
        assert index["warnings"] == []
        expected = (list(truth.source.keys), truth.source.offsets.tolist(), truth.labels.tolist())
        assert (index["keys"], index["offsets"], index["labels"]) == expected
    cached = sorted(p.name for p in (tmp_path / "cache" / "tar-index").iterdir())
    assert len(cached) == 40 and all(name.endswith(".index") for name in cached), "one index per shard, no temporary left"
    import dali_ba.sources.tar.index as tar_index

    monkeypatch.setattr(tar_index, "read_tar_headers", lambda path: pytest.fail(f"{path} was indexed again"))
    assert index_tar_shards(pattern).source.keys == truth.source.keys


def test_a_damaged_cache_entry_is_rebuilt(tmp_path):
    shard = tmp_path / "a.tar"
    write_tar(shard, {"x.jpg": jpeg(), "x.cls": b"1"})
    index_tar_shards(str(shard))
    (entry,) = (tmp_path / "cache" / "tar-index").iterdir()
    entry.write_bytes(entry.read_bytes()[:40])  # torn
    assert index_tar_shards(str(shard)).labels.tolist() == [1]


@pytest.mark.parametrize(
    "members, message",
    [
        ({"ok.jpg": b"1", "ok.cls": b"0", "lonely.jpg": b"1"}, r"sample 'lonely' has no label member lonely\.cls"),
        ({"ok.jpg": b"1", "ok.cls": b"0", "nolabel.json": b"{}", "nolabel.cls": b"3"}, r"sample 'nolabel' has no image member"),
        ({"cat.jpg": b"1", "cat.cls": b"tabby"}, r"sample 'cat' has label 'tabby' in cat\.cls, expected an integer"),
    ],
)
def test_malformed_samples_are_named_by_shard_and_key(tmp_path, members, message):
    shard = tmp_path / "bad-000.tar"
    write_tar(shard, members)
    with pytest.raises(ValueError, match=rf"tar shard '.*bad-000\.tar': {message}"):
        TarShardLoader(str(shard), device="cpu", batch_size=1)


def test_a_file_that_is_not_a_tar_is_named(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ValueError, match=r"'.*x\.tar' is not a readable tar shard"):
        index_tar_shards(str(tmp_path / "x.tar"))


# -- the loader over shards -------------------------------------------------------------------


def test_every_sample_comes_out_exactly_once_per_epoch(color_shards):
    pattern, truth = color_shards
    loader = make(pattern, batch_size=5, drop_last=False)
    orders = []
    for _ in range(3):
        keys = epoch_keys(loader, truth)
        assert Counter(keys) == {key: 2 for key in truth}
        orders.append(keys)
    assert orders[0] != orders[1] != orders[2]


def test_shards_of_ranks_are_disjoint_under_torchrun(color_shards, monkeypatch):
    pattern, truth = color_shards
    monkeypatch.setenv("WORLD_SIZE", "3")
    seen = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        seen.append(set(epoch_keys(make(pattern, batch_size=3, drop_last=False), truth)))
    assert set.union(*seen) == set(truth) and sum(map(len, seen)) == len(truth)


def test_resume_mid_epoch_delivers_exactly_the_rest(color_shards):
    pattern, truth = color_shards
    full = epoch_keys(make(pattern, batch_size=3, aug_repeats=1), truth)
    loader = make(pattern, batch_size=3, aug_repeats=1)
    delivered = []
    for i, (images, _) in enumerate(loader):
        delivered += identify(images, truth)
        if i == 3:
            state = loader.state_dict()
            break
    resumed = make(pattern, batch_size=3, aug_repeats=1, seed=50)
    resumed.load_state_dict(state)
    assert delivered + epoch_keys(resumed, truth) == full


def _shard_with_a_corrupt_image(tmp_path):
    members = {}
    for k in range(6):
        members[f"s{k}.jpg"] = jpeg(seed=k)
        members[f"s{k}.cls"] = str(k % 2).encode()
    members["broken.jpg"] = b"\xff\xd8\xff\xe0 not really a jpeg" * 20
    members["broken.cls"] = b"1"
    shard = tmp_path / "train-000000.tar"
    write_tar(shard, members)
    return str(shard)


def test_corrupt_image_in_a_tar_is_named_by_shard_and_key(tmp_path):
    shard = _shard_with_a_corrupt_image(tmp_path)
    loader = TarShardLoader(shard, batch_size=7, aug_repeats=1, image_size=16, device="cpu", drop_last=False)
    with pytest.raises(DecodeError, match=r"could not decode sample 'broken' in tar shard '.*train-000000\.tar'") as info:
        next(iter(loader))
    assert info.value.path == shard and info.value.key == "broken"


def test_skip_mode_leaves_out_only_the_corrupt_sample(tmp_path):
    shard = _shard_with_a_corrupt_image(tmp_path)
    loader = TarShardLoader(shard, batch_size=3, aug_repeats=2, image_size=16, device="cpu", drop_last=False,
                            on_error="skip", seed=1)
    with pytest.warns(SkippedFileWarning, match=r"sample 'broken' in tar shard"):
        delivered = sum(len(labels) for _, labels in loader)
    assert delivered == 6 * 2
    assert loader.state_dict()["skipped_files"] == [f"{shard}:broken"]


# -- file lists -------------------------------------------------------------------------------


def test_file_list_reads_relative_paths_and_labels(color_tree, tmp_path):
    root, truth = color_tree
    lines = [f"{os.path.relpath(path, root)} {label}" for path, (label, _) in truth.items()]
    (root / "train.txt").write_text("# path label\n" + "\n".join(lines) + "\n\n")
    index = read_file_list(root / "train.txt")
    assert sorted(zip(index.files, index.labels.tolist())) == sorted((p, label) for p, (label, _) in truth.items())
    loader = FileListLoader(root / "train.txt", batch_size=6, aug_repeats=1, image_size=16, device="cpu", recipe="val",
                            drop_last=False)
    assert sorted(path for images, _ in loader for path in identify(images, truth)) == sorted(truth)


def test_file_list_line_without_a_label_is_named_with_its_number(tmp_path):
    (tmp_path / "list.txt").write_text("a.jpg 0\nb.jpg\n")
    with pytest.raises(ValueError, match=r"list\.txt' line 2: expected '<path> <label>'.*'b\.jpg'"):
        read_file_list(tmp_path / "list.txt")
