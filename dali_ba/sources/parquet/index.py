"""Indexing Parquet files as Hugging Face ``datasets`` stores image sets: row groups and labels, nothing else.

An image set on the Hub is a set of Parquet files with an image column, the ``Image`` feature (a
struct ``{bytes, path}``) or plain binary, beside an integer label column. A local file's index
is read from its footer and label column. A remote file's comes from range reads of its footer
and its label column chunks, and is cached (``cache.py``, kind ``parquet-index``, keyed by URL,
size, version tag and columns; the ranks of a node fetch each file's once between them). The
samples are then read through a :class:`~.source.ParquetSource`.
"""

from __future__ import annotations

import functools
import json
import logging
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..cache import built_once, built_once_each, entry, written_atomically
from ..index import SampleIndex, StringTable, release_freed_memory
from ..patterns import expand_paths
from ..remote import INDEX_THREADS, RangeFile, RemoteStore
from ..store import LocalStore, redact, remote_store
from .source import CACHE_GROUPS, FileInfo, ParquetSource, metadata_of

log = logging.getLogger(__name__)

#: Bytes read from a remote file's end at first, in the hope that the footer fits (as pyarrow does).
FOOTER_READ = 64 * 1024
#: Version of the remote-file index cache's format.
INDEX_VERSION = 1
#: Local files indexed at once (reading a footer and a label column waits on storage).
LOCAL_INDEX_THREADS = 8


def index_parquet(files, *, image_column: str = "image", label_column: str = "label", cache_groups: int = CACHE_GROUPS,
                  threads: int | None = None, storage_options: dict | None = None, use_cache: bool = True) -> SampleIndex:
    """Indexes Parquet files into one :class:`SampleIndex` read through a :class:`~.source.ParquetSource`.

    Args:
        files: A path, a pattern (brace ranges ``train-{00000..00293}.parquet``, globs) or a list of them.
        image_column: The image column: Hugging Face's ``Image`` feature (struct ``{bytes, path}``) or binary.
        label_column: The integer label column. Class names come from Hugging Face's ``ClassLabel``
            metadata where the files carry it, else ``"0"``, ``"1"``, ...
        cache_groups: Row groups the source keeps decoded.
        threads: Files indexed at once; ``None``: 8, or ``remote.INDEX_THREADS`` (32) for URLs.
        storage_options: For URLs (``hf://``, ``s3://``, ``https://``, ...): passed to their
            ``fsspec`` filesystem. A remote file is indexed from range reads of its footer and its
            label column (one request per row group, all in flight together) and cached locally
            (see the module docstring); each row group's images are then one ranged request.
        use_cache: Read and write that cache (remote files only).

    Raises:
        FileNotFoundError: A file is missing or a pattern matches nothing.
        StorageError: A URL cannot be read (404 and 403 at once, others after retries); it is named.
        ValueError: A file is not Parquet, lacks a column (the message lists the columns there
            are), has an image column that is neither struct nor binary, or a label that is
            missing, negative or not an integer; the message names the file (and the row).
    """
    paths = expand_paths(files, what="parquet file", param="files")
    remote = remote_store(paths, storage_options, what="parquet files")
    if remote is not None:
        paths = remote.expand(paths, what="parquet file")
    threads = threads or (INDEX_THREADS if remote is not None else LOCAL_INDEX_THREADS)
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
        infos.append(FileInfo(path, first_group, tuple(group_rows), **remote_part))
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
    files = StringTable.repeated([redact(info.path) for info in infos], [sum(info.group_rows) for info in infos])
    del parts, groups, rows
    release_freed_memory()
    return SampleIndex(
        root=Path(paths[0]) if remote is None else redact(paths[0]),
        files=files,
        labels=labels,
        classes=tuple(classes),
        class_to_idx={name: c for c, name in enumerate(classes)},
        source=ParquetSource(files, infos, image_column, sample_group, sample_row, cache_groups, remote or LocalStore()),
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
    the ranks of a node build each entry once between them, ``cache.built_once``), else from its
    footer (one or two ranged requests) and its label column chunks (one request per row group,
    all in flight together). Nothing of its image column is read. ``None`` where ``wait`` is
    False and another process is building it."""
    info = remote.info(url)
    size = info["size"]
    build = functools.partial(_read_remote_index, url, remote, size, image_column, label_column)
    if use_cache:
        cached = entry("parquet-index", url.rsplit("/", 1)[-1], url, size, info["version"], image_column, label_column,
                       INDEX_VERSION, suffix=".npz")
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
        metadata = metadata_of(tail)
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
        metadata = metadata_of(tail)  # a damaged footer is rebuilt, not failed on later
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
