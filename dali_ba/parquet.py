"""Parquet files as a source, as Hugging Face ``datasets`` stores image sets (``pip install dali-ba[parquet]``).

Sits beside ``dataset.py`` and ``shards.py`` at the start of the flow and ends in the same
:class:`SampleIndex`, so the order, reader, decode and loader stages treat a Parquet row like a
file. An image set on the Hub is a set of Parquet files with an image column, the ``Image``
feature (a struct ``{bytes, path}``) or plain binary, beside an integer label column.

Indexing reads each file's footer (row groups) and its label column, nothing else. Parquet reads
a row group's column at once, so samples are read through a :class:`ParquetStore`: the reader
threads ask for rows, and the store reads the image column of each row group they need once,
keeps the last ``cache_groups`` of them, and hands out each row's bytes without a copy.

Reading cost. With the default exact permutation over all samples, a batch touches as many row
groups as it has samples; once the data set is larger than the store's cache, each image costs
the read of its whole row group (Hugging Face writes 100 images per row group). The loader's
``shuffle_window`` (row groups per window) makes the order group-local, so each row group is
read about once per epoch on each rank; ``dali-ba bench`` counts the bytes either way.

pyarrow is imported here only, so ``import dali_ba`` does not need it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import zipfile
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import built_once, built_once_each, cache_dir, written_atomically
from .dataset import SampleIndex, StringTable
from .shards import expand_shards
from .storage import INDEX_THREADS, RangeFile, RemoteStore, redact, store_for

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
except ImportError:  # the optional extra
    raise ImportError("reading Parquet needs pyarrow: pip install 'dali-ba[parquet]'") from None

log = logging.getLogger(__name__)

#: Row groups a store keeps decoded (about 1 GB for ImageNet-sized images in groups of 100).
CACHE_GROUPS = 96
#: Bytes read from a remote file's end at first, in the hope that the footer fits (as pyarrow does).
FOOTER_READ = 64 * 1024
#: Version of the remote-file index cache's format.
INDEX_VERSION = 1


@dataclass(frozen=True)
class _FileInfo:
    path: str
    first_group: int  # global id of the file's first row group
    group_rows: tuple[int, ...]  # rows in each of its row groups
    # Remote files only: their size, their last bytes (the footer within), and each row group's
    # image column chunk as (offset, size), so that a row group costs one ranged request.
    size: int = 0
    tail: bytes = b""
    image_ranges: tuple[tuple[int, int], ...] = ()

    def open(self, remote: RemoteStore | None, group: int | None = None):
        """The file for pyarrow: its path, or a :class:`RangeFile` holding the footer and, with
        ``group``, that row group's image column (fetched now, in one request)."""
        if remote is None:
            return pq.ParquetFile(self.path)
        known = {self.size - len(self.tail): self.tail}
        if group is not None:
            offset, size = self.image_ranges[group]
            known[offset] = remote.read(self.path, offset, size)
        return pq.ParquetFile(RangeFile(remote, self.path, self.size, known), metadata=self.metadata)

    @functools.cached_property
    def metadata(self):
        """A remote file's ``FileMetaData``, parsed from its last bytes once (not at every row group)."""
        return _metadata(self.tail)


class ParquetStore:
    """Reads samples' image bytes from Parquet row groups, each needed row group once at a time.

    Thread-safe: reader threads that want rows of the same row group wait for one read of it.

    Args:
        files: The files, in index order, with their row groups.
        image_column: The column holding the images (``Image`` struct or binary).
        sample_group: Global row-group id of each sample (``int32``).
        sample_row: Each sample's row inside its row group (``int32``).
        cache_groups: Row groups kept decoded.
    """

    container = "parquet file"

    def __init__(self, files: list[_FileInfo], image_column: str, sample_group: np.ndarray, sample_row: np.ndarray,
                 cache_groups: int = CACHE_GROUPS, remote: RemoteStore | None = None):
        self._files = files
        #: The store remote files are read through (``None`` for local files).
        self.remote = remote
        self._group_file = np.concatenate([np.full(len(f.group_rows), k, dtype=np.int32) for k, f in enumerate(files)])
        self._group_starts_in_file = np.concatenate([np.cumsum((0,) + f.group_rows)[:-1] for f in files]).astype(np.int64)
        self._image_column = image_column
        self._sample_group, self._sample_row = sample_group, sample_row
        self._cache_groups = cache_groups
        self._cache: OrderedDict[int, Future] = OrderedDict()
        self._lock = threading.Lock()
        #: Row groups read from storage so far, and their image columns' bytes.
        self.groups_read = 0
        self.bytes_read = 0


    @property
    def requests(self) -> int:
        """Reads sent to storage so far: row groups read, or behind URLs the store's requests
        (the index's and retries included)."""
        return self.remote.stats.requests if self.remote is not None else self.groups_read

    @property
    def index_nbytes(self) -> int:
        """Bytes of the per-sample and per-group arrays (the index's share; cached row groups aside)."""
        return sum(a.nbytes for a in (self._group_file, self._group_starts_in_file, self._sample_group, self._sample_row))
    def clear(self) -> None:
        """Forgets the row groups kept decoded (the next reads come from storage)."""
        with self._lock:
            self._cache.clear()

    def key(self, i: int) -> str:
        """``row N``: sample ``i``'s row in its file."""
        g = int(self._sample_group[i])
        return f"row {int(self._group_starts_in_file[g]) + int(self._sample_row[i])}"

    def read(self, i: int) -> np.ndarray:
        """Sample ``i``'s encoded image (1-D uint8, a view of the row group's buffer); empty where the row has none."""
        column = self._group(int(self._sample_group[i]))
        value = column[int(self._sample_row[i])]
        if not value.is_valid:
            return np.empty(0, dtype=np.uint8)  # the feed names it as undecodable
        return np.frombuffer(value.as_buffer(), dtype=np.uint8)

    def _group(self, g: int):
        with self._lock:
            entry = self._cache.get(g)
            mine = entry is None
            if mine:
                entry = self._cache[g] = Future()
                while len(self._cache) > self._cache_groups:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(g)
        if mine:
            try:
                entry.set_result(self._read_group(g))
            except BaseException as err:
                with self._lock:
                    self._cache.pop(g, None)
                entry.set_exception(err)
        return entry.result()

    def _read_group(self, g: int):
        info = self._files[int(self._group_file[g])]
        try:
            table = info.open(self.remote, g - info.first_group).read_row_group(
                g - info.first_group, columns=[self._image_column], use_threads=False)
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
        return column


def index_parquet(files, *, image_column: str = "image", label_column: str = "label", cache_groups: int = CACHE_GROUPS,
                  threads: int | None = None, storage_options: dict | None = None, use_cache: bool = True) -> SampleIndex:
    """Indexes Parquet files into one :class:`SampleIndex` read through a :class:`ParquetStore`.

    Args:
        files: A path, a pattern (brace ranges ``train-{00000..00293}.parquet``, globs) or a list of them.
        image_column: The image column: Hugging Face's ``Image`` feature (struct ``{bytes, path}``) or binary.
        label_column: The integer label column. Class names come from Hugging Face's ``ClassLabel``
            metadata where the files carry it, else ``"0"``, ``"1"``, ...
        cache_groups: Row groups the store keeps decoded.
        threads: Files indexed at once; ``None``: 8, or ``storage.INDEX_THREADS`` (32) for URLs.
        storage_options: For URLs (``hf://``, ``s3://``, ``https://``, ...): passed to their
            ``fsspec`` filesystem. A remote file is indexed from range reads of its footer and its
            label column (one request per row group, all in flight together) and cached locally
            under ``cache_dir()/parquet-index``, keyed by URL, size and version tag (processes that
            share the cache, the ranks of a node, fetch each file's once between them); each row
            group's images are then one ranged request.
        use_cache: Read and write that cache (remote files only).

    Raises:
        FileNotFoundError: A file is missing or a pattern matches nothing.
        StorageError: A URL cannot be read (404 and 403 at once, others after retries); it is named.
        ValueError: A file is not Parquet, lacks a column (the message lists the columns there
            are), has an image column that is neither struct nor binary, or a label that is
            missing, negative or not an integer; the message names the file (and the row).
    """
    paths = expand_shards(files, what="parquet file", param="files")
    remote = store_for(paths, storage_options, what="parquet files")
    if remote is not None:
        paths = remote.expand(paths, what="parquet file")
    threads = threads or (INDEX_THREADS if remote is not None else 8)
    with ThreadPoolExecutor(max(1, min(threads, len(paths)))) as pool:
        if remote is None:
            parts = list(pool.map(lambda path: _index_file(path, image_column, label_column), paths))
        else:
            one = functools.partial(_index_remote_file, remote=remote, image_column=image_column, label_column=label_column,
                                    use_cache=use_cache)
            parts = built_once_each(pool, paths, one)
    infos, labels, groups, rows, classes = [], [], [], [], None
    first_group = 0
    for path, group_rows, file_labels, names, remote_part in parts:
        infos.append(_FileInfo(path, first_group, tuple(group_rows), **remote_part))
        for g, count in enumerate(group_rows):
            groups.append(np.full(count, first_group + g, dtype=np.int32))
            rows.append(np.arange(count, dtype=np.int32))
        first_group += len(group_rows)
        labels.append(file_labels)
        classes = classes or names
    labels = np.concatenate(labels) if labels else np.empty(0, np.int64)
    if labels.size == 0:
        raise ValueError(f"the {len(paths)} parquet file(s) starting with {redact(paths[0])!r} hold no row")
    sample_group, sample_row = np.concatenate(groups), np.concatenate(rows)
    group_sizes = [count for info in infos for count in info.group_rows]
    if classes is None or len(classes) <= int(labels.max()):
        classes = tuple(str(c) for c in range(int(labels.max()) + 1))
    return SampleIndex(
        root=Path(paths[0]) if remote is None else redact(paths[0]),
        files=StringTable.repeated([redact(info.path) for info in infos], [sum(info.group_rows) for info in infos]),
        labels=labels,
        classes=tuple(classes),
        class_to_idx={name: c for c, name in enumerate(classes)},
        store=ParquetStore(infos, image_column, sample_group, sample_row, cache_groups, remote),
        group_starts=np.concatenate([[0], np.cumsum(group_sizes)]).astype(np.int64),
    )


def _index_file(path: str, image_column: str, label_column: str):
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{path!r} is not a readable parquet file: {err}") from None
    return (path, *_labels_and_groups(parquet, path, image_column, label_column), {})


def _labels_and_groups(parquet, path: str, image_column: str, label_column: str):
    """``(rows of each row group, labels, ClassLabel names or None)`` of an open file, its columns checked."""
    schema = parquet.schema_arrow
    for role, name in (("image_column", image_column), ("label_column", label_column)):
        if name not in schema.names:
            raise ValueError(f"parquet file {path!r} has no column {name!r} ({role}); its columns are: {', '.join(schema.names)}")
    image_type = schema.field(image_column).type
    if not (pa.types.is_binary(image_type) or pa.types.is_large_binary(image_type)
            or (pa.types.is_struct(image_type) and image_type.get_field_index("bytes") >= 0)):
        raise ValueError(f"parquet file {path!r}: image column {image_column!r} has type {image_type}, expected binary or "
                         f"Hugging Face's Image struct {{bytes, path}}")
    label_type = schema.field(label_column).type
    if not pa.types.is_integer(label_type):
        raise ValueError(f"parquet file {path!r}: label column {label_column!r} has type {label_type}, expected integers")
    column = parquet.read(columns=[label_column], use_threads=False).column(0)
    if column.null_count:
        row = next(r for r, valid in enumerate(column.is_valid().to_pylist()) if not valid)
        raise ValueError(f"parquet file {path!r}: row {row} has no label in column {label_column!r}")
    labels = column.to_numpy().astype(np.int64)
    if labels.size and labels.min() < 0:
        row = int(np.argmax(labels < 0))
        raise ValueError(f"parquet file {path!r}: row {row} has label {labels[row]} in column {label_column!r}, expected "
                         f"an integer >= 0 (a test split without labels?)")
    group_rows = [parquet.metadata.row_group(g).num_rows for g in range(parquet.metadata.num_row_groups)]
    return group_rows, labels, _class_names(schema, label_column)


# -- files behind URLs ---------------------------------------------------------------------------------


def _index_remote_file(url: str, remote: RemoteStore, image_column: str, label_column: str, use_cache: bool, *,
                       wait: bool = True):
    """A remote file's index, from the local cache (keyed by URL, size, version tag and columns;
    the ranks of a node build each entry once between them, ``config.built_once``), else from its
    footer (one or two ranged requests) and its label column chunks (one request per row group,
    all in flight together). Nothing of its image column is read. ``None`` where ``wait`` is
    False and another process is building it."""
    info = remote.info(url)
    size = info["size"]
    build = functools.partial(_read_remote_index, url, remote, size, image_column, label_column)
    if use_cache:
        key = hashlib.sha1(f"{url}\0{info['version']}\0{image_column}\0{label_column}".encode()).hexdigest()[:24]
        cached = cache_dir() / "parquet-index" / f"{key}-{size}-v{INDEX_VERSION}.npz"
        found = built_once(cached, build, load=_load_cached, save=functools.partial(_write_cache, cached), name=redact(url),
                           wait=wait)
    else:
        found = build()
    if found is None:
        return None
    tail, metadata, group_rows, labels, names = found
    return url, group_rows, labels, names, _remote_part(size, tail, metadata, image_column)


def _read_remote_index(url: str, remote: RemoteStore, size: int, image_column: str, label_column: str):
    """``(tail, its metadata, rows of each row group, labels, ClassLabel names or None)`` of a
    remote file, from its last bytes and its label column chunks."""
    name = redact(url)
    tail = remote.read(url, max(0, size - FOOTER_READ), min(size, FOOTER_READ))
    if size < 12 or tail[-4:] != b"PAR1":
        raise ValueError(f"{name!r} is not a parquet file (its last bytes are not PAR1)")
    footer = int.from_bytes(tail[-8:-4], "little") + 8
    if footer > size - 4:
        raise ValueError(f"{name!r} is not a readable parquet file: its footer says {footer} bytes, the file has {size}")
    if footer > len(tail):
        tail = remote.read(url, size - footer, footer)
    try:
        metadata = _metadata(tail)
    except pa.ArrowException as err:
        raise ValueError(f"{name!r} is not a readable parquet file: {err}") from None
    labels_leaf = [i for i in range(metadata.num_columns) if metadata.schema.column(i).path == label_column]
    known = {size - len(tail): tail}
    if labels_leaf:  # a missing column is reported by _labels_and_groups, with the columns there are
        ranges = [_chunk_range(metadata.row_group(g), labels_leaf) for g in range(metadata.num_row_groups)]
        known.update(zip((offset for offset, _ in ranges), remote.read_many([(url, *r) for r in ranges])))
    parquet = pq.ParquetFile(RangeFile(remote, url, size, known), metadata=metadata)
    return (tail, metadata, *_labels_and_groups(parquet, name, image_column, label_column))


def _load_cached(cached: Path):
    """What ``_read_remote_index`` gave, as ``_write_cache`` saved it; ``None`` if damaged."""
    try:
        with np.load(cached) as data:
            tail, labels, group_rows = data["tail"].tobytes(), data["labels"], data["group_rows"].tolist()
            names = json.loads(data["names"].tobytes()) if data["names"].size else None
        metadata = _metadata(tail)  # a damaged footer is rebuilt, not failed on later
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, pa.ArrowException):
        return None
    return tail, metadata, group_rows, labels, (tuple(names) if names else None)


def _write_cache(cached: Path, index) -> None:
    tail, _, group_rows, labels, names = index
    try:
        with written_atomically(cached) as f:
            np.savez(f, tail=np.frombuffer(tail, np.uint8), labels=labels, group_rows=np.asarray(group_rows, np.int64),
                     names=np.frombuffer(json.dumps(names).encode() if names else b"", np.uint8))
    except OSError as err:  # a read-only cache is no reason to fail
        log.warning("could not cache the index of a parquet file in %s: %s", cached.parent, err)


def _metadata(tail: bytes):
    """The ``FileMetaData`` in a file's last bytes (the footer and its 8-byte trailer at the end)."""
    footer = int.from_bytes(tail[-8:-4], "little")
    return pq.read_metadata(pa.BufferReader(b"PAR1" + tail[len(tail) - footer - 8 :]))


def _remote_part(size: int, tail: bytes, metadata, image_column: str) -> dict:
    leaves = [i for i in range(metadata.num_columns)
              if metadata.schema.column(i).path == image_column or metadata.schema.column(i).path.startswith(image_column + ".")]
    ranges = tuple(_chunk_range(metadata.row_group(g), leaves) for g in range(metadata.num_row_groups))
    return {"size": size, "tail": tail, "image_ranges": ranges}


def _chunk_range(row_group, leaves: list[int]) -> tuple[int, int]:
    """``(offset, size)`` spanning the column chunks ``leaves`` of ``row_group`` (a struct's leaves lie together)."""
    starts, ends = [], []
    for leaf in leaves:
        column = row_group.column(leaf)
        start = column.dictionary_page_offset if column.has_dictionary_page and column.dictionary_page_offset else \
            column.data_page_offset
        starts.append(start)
        ends.append(start + column.total_compressed_size)
    return min(starts), max(ends) - min(starts)


def _class_names(schema, label_column: str):
    """Hugging Face's ``ClassLabel`` names for ``label_column``, from the schema's metadata, or ``None``."""
    try:
        info = json.loads((schema.metadata or {})[b"huggingface"])
        feature = info["info"]["features"][label_column]
        return tuple(feature["names"]) if feature.get("_type") == "ClassLabel" else None
    except (KeyError, TypeError, ValueError):
        return None


def write_parquet(index: SampleIndex, out: str | os.PathLike, *, rows_per_file: int = 1000, row_group_size: int = 100,
                  prefix: str = "train", shuffle: bool = True, seed: int = 0) -> list[Path]:
    """Writes ``index`` as Parquet files laid out as Hugging Face ``datasets`` writes image sets.

    Columns ``image`` (struct ``{bytes, path}``, the ``Image`` feature) and ``label`` (int64, with
    ``ClassLabel`` names in the schema's metadata), ``row_group_size`` rows per row group. Files are
    written under a temporary name and renamed when complete. Used by ``dali-ba bench`` and the tests.

    Returns:
        The files written, in order.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(index)) if shuffle else np.arange(len(index))
    metadata = {b"huggingface": json.dumps({"info": {"features": {
        "image": {"_type": "Image"}, "label": {"_type": "ClassLabel", "names": list(index.classes)}}}}).encode()}
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), ("label", pa.int64())],
                       metadata=metadata)
    written = []
    for number, start in enumerate(range(0, len(order), rows_per_file)):
        chunk = order[start : start + rows_per_file]
        images = [{"bytes": index.read(int(i)).tobytes(), "path": os.path.basename(index.name(int(i)))} for i in chunk]
        table = pa.table({"image": images, "label": index.labels[chunk]}, schema=schema)
        path = out / f"{prefix}-{number:05d}.parquet"
        partial = path.with_suffix(".parquet.tmp")
        pq.write_table(table, partial, row_group_size=row_group_size)
        os.replace(partial, path)
        written.append(path)
    return written

