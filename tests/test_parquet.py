"""Parquet files as Hugging Face ``datasets`` stores images: the same epochs, shards, resume and errors."""

import functools
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from conftest import identify, small_loader

pa = pytest.importorskip("pyarrow", reason="pyarrow is the optional extra dali-ba[parquet]")
import pyarrow.parquet as pq  # noqa: E402

from dali_ba import DecodeError, ImageFolderLoader, ParquetLoader, SkippedFileWarning  # noqa: E402
from dali_ba.sources import scan_image_folder  # noqa: E402
from dali_ba.sources.parquet import index_parquet, write_parquet  # noqa: E402


@pytest.fixture
def color_parquet(color_tree, tmp_path):
    """``(pattern, truth)``: the 24 colour images in 3 files of 8 rows, 4 rows per row group."""
    root, truth = color_tree
    write_parquet(scan_image_folder(root), tmp_path / "pq", rows_per_file=8, row_group_size=4)
    return str(tmp_path / "pq" / "train-{00000..00002}.parquet"), truth


make = functools.partial(small_loader, ParquetLoader, batch_size=5, aug_repeats=2, recipe="val", drop_last=False)


def epoch_files(loader, truth):
    return [path for images, _ in loader for path in identify(images, truth)]


def test_every_row_once_per_epoch_with_its_label_and_class_names(color_parquet):
    files, truth = color_parquet
    loader = make(files)
    assert loader.classes == ["class_0", "class_1", "class_2"], "ClassLabel names from the files' metadata"
    for _ in range(2):
        seen = []
        for images, labels in loader:
            found = identify(images, truth)
            assert labels.tolist() == [truth[f][0] for f in found]
            seen += found
        assert Counter(seen) == {f: 2 for f in truth}


def test_the_store_reads_only_the_image_column_of_each_row_group_it_needs(color_parquet):
    files, _ = color_parquet
    loader = make(files, batch_size=24)
    next(iter(loader))
    store = loader.dataset.source
    assert store.groups_read == 6, "6 row groups of 4 rows, each read once for one batch of all 24"
    assert store.bytes_read == loader.io.bytes_read  # the image bytes, not the labels or paths


def test_plain_binary_image_column_and_other_column_names(color_tree, tmp_path):
    root, truth = color_tree
    index = scan_image_folder(root)
    table = pa.table({"jpg": [index.read(i).tobytes() for i in range(len(index))], "cls": pa.array(index.labels, pa.int16())})
    pq.write_table(table, tmp_path / "plain.parquet", row_group_size=10)
    loader = make(tmp_path / "plain.parquet", image_column="jpg", label_column="cls")
    assert loader.classes == ["0", "1", "2"]
    assert sorted(epoch_files(loader, truth)) == sorted(list(truth) * 2)


def write(path, **columns):
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    "columns, message",
    [
        (dict(img=[b"x"], label=[0]), r"has no column 'image' \(image_column\); its columns are: img, label"),
        (dict(image=[b"x"], y=[0]), r"has no column 'label' \(label_column\); its columns are: image, y"),
        (dict(image=[b"x"], label=["cat"]), r"label column 'label' has type string, expected integers"),
        (dict(image=[b"x", b"y"], label=[1, -1]), r"row 1 has label -1 in column 'label', expected an integer >= 0"),
        (dict(image=[b"x", b"y"], label=[1, None]), r"row 1 has no label in column 'label'"),
        (dict(image=[1], label=[0]), r"image column 'image' has type int64, expected binary or Hugging Face's Image"),
    ],
)
def test_bad_columns_name_the_file_and_row(tmp_path, columns, message):
    path = write(tmp_path / "bad.parquet", **columns)
    with pytest.raises(ValueError, match=rf"parquet file '.*bad\.parquet'.*{message}" if "columns are" not in message
                       else rf"parquet file '.*bad\.parquet' {message}"):
        index_parquet(path)


def test_not_parquet_and_missing_files_are_named(tmp_path):
    (tmp_path / "fake.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=r"'.*fake\.parquet' is not a readable parquet file"):
        index_parquet(tmp_path / "fake.parquet")
    with pytest.raises(FileNotFoundError, match=r"parquet file pattern '.*\*\.parquet' matches no file"):
        index_parquet(str(tmp_path / "none" / "*.parquet"))


def _with_a_corrupt_row(color_tree, tmp_path):
    root, truth = color_tree
    index = scan_image_folder(root)
    images = [{"bytes": index.read(i).tobytes(), "path": None} for i in range(6)]
    images[4] = {"bytes": b"\xff\xd8\xff\xe0 not a jpeg" * 20, "path": None}
    images[5] = {"bytes": None, "path": "only/a/path.jpg"}  # an Image feature without bytes
    return write(tmp_path / "broken.parquet", image=images, label=list(index.labels[:6])), truth


def test_a_corrupt_image_is_named_by_file_and_row(color_tree, tmp_path):
    path, _ = _with_a_corrupt_row(color_tree, tmp_path)
    with pytest.raises(DecodeError, match=r"could not decode sample 'row 4' in parquet file '.*broken\.parquet'") as info:
        for _ in make(path, batch_size=6, shuffle=False):
            pass
    assert info.value.path == str(path) and info.value.key == "row 4"


def test_skip_mode_names_and_leaves_out_the_bad_rows(color_tree, tmp_path):
    path, truth = _with_a_corrupt_row(color_tree, tmp_path)
    loader = make(path, batch_size=3, on_error="skip")
    with pytest.warns(SkippedFileWarning) as caught:
        delivered = epoch_files(loader, truth)
    assert "'row 4' in parquet file" in " ".join(str(w.message) for w in caught)
    assert len(delivered) == 4 * 2 and sorted(loader.state_dict()["skipped_files"]) == [f"{path}:row 4", f"{path}:row 5"]


def test_shuffle_window_reads_each_row_group_once_per_epoch(color_parquet):
    files, truth = color_parquet
    loader = make(files, batch_size=4, shuffle_window=2, cache_groups=2)  # a cache smaller than the data, as large sets see
    order = loader._cursor.plan.order(0)
    starts = loader.dataset.group_starts
    group_of = np.searchsorted(starts, order, side="right") - 1
    for first in range(0, 24, 8):  # each window of 2 row groups (8 rows) is its own 8 positions
        assert len(set(group_of[first : first + 8].tolist())) == 2
    assert Counter(epoch_files(loader, truth)) == {f: 2 for f in truth}
    assert loader.dataset.source.groups_read == 6, "each row group read once in the epoch"
    loader = make(files, batch_size=4, cache_groups=2)
    epoch_files(loader, truth)
    assert loader.dataset.source.groups_read > 6, "the exact permutation rereads row groups once they leave the cache"


def test_shuffle_window_needs_a_source_stored_in_groups(color_tree):
    root, _ = color_tree
    with pytest.raises(ValueError, match=r"shuffle_window=4 shuffles within windows of storage groups"):
        ImageFolderLoader(root, batch_size=4, device="cpu", shuffle_window=4)


def test_import_dali_ba_does_not_import_pyarrow():
    code = "import sys, dali_ba; sys.exit(1 if 'pyarrow' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_state_resumes_only_with_the_same_shuffle_window(color_parquet):
    files, truth = color_parquet
    loader = make(files, batch_size=4, shuffle_window=2)
    first = []
    for i, (images, _) in enumerate(loader):
        first += identify(images, truth)
        if i == 1:
            break
    state = loader.state_dict()
    with pytest.raises(ValueError, match="shuffle_window=2 but this loader has shuffle_window=None"):
        make(files, batch_size=4).load_state_dict(state)
    resumed = make(files, batch_size=4, shuffle_window=2)
    resumed.load_state_dict(state)
    assert Counter(first + epoch_files(resumed, truth)) == {f: 2 for f in truth}


def test_a_file_damaged_after_indexing_is_named(color_parquet):
    files, truth = color_parquet
    loader = make(files, batch_size=24, shuffle=False)
    damaged = sorted(set(loader.files))[1]
    data = open(damaged, "rb").read()
    open(damaged, "wb").write(data[:100] + b"\0" * (len(data) - 200) + data[-100:])  # same size, footer kept
    with pytest.raises(OSError, match=r"could not read row group \d of parquet file '.*train-00001\.parquet'"):
        next(iter(loader))
