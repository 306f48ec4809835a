"""Reading the samples of Parquet files: each row group's image column read once, kept for its rows.

Parquet reads a row group's column at once, so the reader threads ask for rows and
:class:`ParquetSource` reads the image column of each row group they need once (a local read by
pyarrow, or behind a URL one ranged request through the remote store), keeps the last
``cache_groups`` of them, and hands out each row's bytes without a copy.

Reading cost. With the default exact permutation over all samples, a batch touches as many row
groups as it has samples; once the data set is larger than the cache, each image costs the read
of its whole row group (Hugging Face writes 100 images per row group). The loader's
``shuffle_window`` (row groups per window) makes the order group-local, so each row group is read
about once per epoch on each rank; ``dali-ba bench`` counts the bytes either way.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..base import Fetched, Read, ReadPlan
from ..remote import RangeFile
from ..store import Store, redact

#: Row groups a source keeps decoded (about 1 GB for ImageNet-sized images in groups of 100).
CACHE_GROUPS = 96
#: Reader threads behind URLs: each waits a round trip for a whole row group.
REMOTE_READ_THREADS = 64


@dataclass(frozen=True)
class FileInfo:
    """One Parquet file: its row groups, and behind a URL what reading one of them takes."""

    path: str
    first_group: int  # global id of the file's first row group
    group_rows: tuple[int, ...]  # rows in each of its row groups
    # Remote files only: their size, their last bytes (the footer within), and each row group's
    # image column chunk as (offset, size), so that a row group costs one ranged request.
    size: int = 0
    tail: bytes = b""
    image_ranges: tuple[tuple[int, int], ...] = ()

    def open(self, store: Store, group: int | None = None) -> tuple[pq.ParquetFile, int]:
        """The file for pyarrow, and the requests opening it took: a local file by its path (its
        reads are pyarrow's, counted as one), or a :class:`~..remote.RangeFile` holding the footer
        and, with ``group``, that row group's image column (fetched now, in one request)."""
        if not store.remote:
            return pq.ParquetFile(self.path), 1
        known = {self.size - len(self.tail): self.tail}
        requests = 0
        if group is not None:
            offset, size = self.image_ranges[group]
            read = store.read_range(self.path, offset, size)
            known[offset], requests = read.data.tobytes(), read.requests
        return pq.ParquetFile(RangeFile(store, self.path, self.size, known), metadata=self.metadata), requests

    @functools.cached_property
    def metadata(self):
        """A remote file's ``FileMetaData``, parsed from its last bytes once (not at every row group)."""
        return metadata_of(self.tail)


def metadata_of(tail: bytes):
    """The ``FileMetaData`` in a file's last bytes (the footer and its 8-byte trailer at the end)."""
    footer = int.from_bytes(tail[-8:-4], "little")
    return pq.read_metadata(pa.BufferReader(b"PAR1" + tail[len(tail) - footer - 8 :]))


class ParquetSource:
    """The images of Parquet rows (``base.Source``), each needed row group read once at a time.

    Thread-safe: reader threads that want rows of the same row group wait for one read of it.

    Args:
        files: Each sample's file (path or URL, as messages name it).
        infos: The files, in index order, with their row groups.
        image_column: The column holding the images (``Image`` struct or binary).
        sample_group: Global row-group id of each sample (``int32``).
        sample_row: Each sample's row inside its row group (``int32``).
        cache_groups: Row groups kept decoded.
        store: ``store.LocalStore`` or ``remote.RemoteStore``.
    """

    container = "parquet file"

    def __init__(self, files, infos: list[FileInfo], image_column: str, sample_group: np.ndarray, sample_row: np.ndarray,
                 cache_groups: int, store: Store):
        self.files, self._infos, self.store = files, infos, store
        self._group_file = np.concatenate([np.full(len(f.group_rows), k, dtype=np.int32) for k, f in enumerate(infos)])
        self._group_starts_in_file = np.concatenate([np.cumsum((0,) + f.group_rows)[:-1] for f in infos]).astype(np.int64)
        self._image_column = image_column
        self._sample_group, self._sample_row = sample_group, sample_row
        self._cache_groups = cache_groups
        self._cache: OrderedDict[int, Future] = OrderedDict()
        self._lock = threading.Lock()
        #: Row groups read from storage so far, and their image columns' bytes.
        self.groups_read = 0
        self.bytes_read = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the per-sample and per-group arrays (cached row groups aside)."""
        return sum(a.nbytes for a in (self._group_file, self._group_starts_in_file, self._sample_group, self._sample_row))

    def clear(self) -> None:
        """Forgets the row groups kept decoded (the next reads come from storage)."""
        with self._lock:
            self._cache.clear()

    def key(self, i: int) -> str:
        """``row N``: sample ``i``'s row in its file."""
        g = int(self._sample_group[i])
        return f"row {int(self._group_starts_in_file[g]) + int(self._sample_row[i])}"

    def read(self, i: int) -> Read:
        """Sample ``i``'s encoded image (a view of the row group's buffer; empty where the row has
        none), with the cost of its row group's read where this read made it."""
        column, requests, nbytes = self._group(int(self._sample_group[i]))
        value = column[int(self._sample_row[i])]
        if not value.is_valid:
            return Read(np.empty(0, dtype=np.uint8), requests, nbytes)  # the feed names it as undecodable
        return Read(np.frombuffer(value.as_buffer(), dtype=np.uint8), requests, nbytes)

    def read_batch(self, indices) -> Fetched:
        return Fetched.of(self.read(int(i)) for i in indices)

    def read_plan(self, *, read_threads: int | None, read_ahead: int, batch_size: int) -> ReadPlan:
        """A sample per thread: ``read_threads``, 16 for local files, 64 behind URLs (each waits a round trip)."""
        return ReadPlan(threads=read_threads or (REMOTE_READ_THREADS if self.store.remote else self.store.in_flight),
                        depth=read_ahead)

    def _group(self, g: int) -> tuple[object, int, int]:
        """Row group ``g``'s image column, and the requests and bytes it cost this call (0 where cached)."""
        with self._lock:
            entry = self._cache.get(g)
            mine = entry is None
            if mine:
                entry = self._cache[g] = Future()
                while len(self._cache) > self._cache_groups:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(g)
        if not mine:
            return entry.result(), 0, 0
        try:
            column, requests, nbytes = self._read_group(g)
        except BaseException as err:
            with self._lock:
                self._cache.pop(g, None)
            entry.set_exception(err)
            raise
        entry.set_result(column)
        return column, requests, nbytes

    def _read_group(self, g: int):
        info = self._infos[int(self._group_file[g])]
        try:
            parquet, requests = info.open(self.store, g - info.first_group)
            table = parquet.read_row_group(g - info.first_group, columns=[self._image_column], use_threads=False)
        except (pa.ArrowException, OSError) as err:  # pyarrow's messages name no file
            raise OSError(f"could not read row group {g - info.first_group} of parquet file {redact(info.path)!r}: "
                          f"{err}") from err
        column = table.column(0).combine_chunks()
        if pa.types.is_struct(column.type):
            column = column.field("bytes")
        encoded = pc.sum(pc.binary_length(column)).as_py() or 0  # the images' bytes, without offsets
        with self._lock:
            self.groups_read += 1
            self.bytes_read += encoded
        return column, requests, encoded
