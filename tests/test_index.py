"""The sample index (``sources/index.py``): ``SampleIndex`` and ``StringTable``."""

import numpy as np
import pytest

from dali_ba.sources import FileSource, SampleIndex, StringTable


def test_string_tables_are_sequences_of_the_strings_given():
    strings = ["/data/train/n1/a.JPEG", "/data/train/n1/b.JPEG", "/data/train/n2/c.jpg", "rel.png", "/ü/ñ.jpg", ""]
    table = StringTable.from_strings(strings)
    assert list(table) == strings and table == strings and table == tuple(strings) and table != strings[:-1]
    assert table[-1] == "" and table[1:3] == tuple(strings[1:3]) and len(table) == 6
    with pytest.raises(IndexError):
        table[6]
    repeated = StringTable.repeated(["a.tar", "b.tar"], [2, 1])
    assert list(repeated) == ["a.tar", "a.tar", "b.tar"] and repeated.nbytes < 200


def test_a_hand_made_index_reads_whole_files(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8abc")
    index = SampleIndex(root=tmp_path, files=[str(tmp_path / "a.jpg")], labels=np.zeros(1, np.int64), classes=("a",),
                        class_to_idx={"a": 0})
    assert isinstance(index.source, FileSource) and index.container is None and index.key(0) is None
    assert index.read(0).tobytes() == b"\xff\xd8abc" and index.name(0) == str(tmp_path / "a.jpg")
    assert index.describe(0) == f"image file {str(tmp_path / 'a.jpg')!r}"
