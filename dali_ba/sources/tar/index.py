"""Indexing tar shards: one :class:`~dali_ba.sources.index.SampleIndex` over many tar files, local or behind URLs.

Each tar file's index (:class:`~.members.TarIndex`) comes from the index cache, else from its
sidecars (``sidecars.py``: ``.idx`` and ``.labels`` beside it), else from a walk over its tar
headers (``walker.py``; behind a URL, after one streaming read of the whole file). The cache
(``cache.py``, kind ``tar-index``) is keyed on a local file's real path, size and mtime, or on a
URL, its size and version tag: a changed file is indexed again, an unchanged one never is, and
the ranks of a node that share the cache index each file once between them.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..cache import built_once, built_once_each, entry, written_atomically
from ..index import SampleIndex, StringTable, indexed_by_label, release_freed_memory
from ..patterns import expand_paths
from ..remote import INDEX_THREADS, RemoteStore
from ..store import LocalStore, StorageError, redact, remote_store
from .members import TarIndex, group_samples
from .sidecars import index_from_sidecars, labels_path, local_copy, read_local_sidecars, sidecar_path, stem
from .source import TarSource
from .walker import walk_tar

log = logging.getLogger(__name__)

INDEX_VERSION = 3  # 3: one raw buffer (2: an .npz, keys as one UTF-8 buffer)
_MAGIC = b"dali-ba tar index\n"
#: Local tar files indexed at once. Reading sidecars is Python work under the interpreter lock,
#: so more threads only hand the lock to each other; their reads are asked of the OS ahead
#: instead (``_read_ahead``). See benchmarks/README.md, start-up at ImageNet scale.
LOCAL_INDEX_THREADS = 1

#: How many tar files this process has indexed from their bytes (sidecar or header walk), for tests
#: and logs: with a shared cache, the ranks of a node together index each file once.
INDEXED = {"sidecar": 0, "walk": 0, "label requests": 0}


def index_tar_shards(shards, *, use_cache: bool = True, threads: int | None = None, storage_options: dict | None = None,
                     in_flight: int | None = None) -> SampleIndex:
    """Indexes tar shards (see the module docstring) into one :class:`SampleIndex`.

    Args:
        shards: A path, a pattern (brace ranges ``train-{000000..000146}.tar``, globs) or a list of
            them, or URLs (``https://``, ``s3://``, ... with brace ranges): their samples are then
            read with one ranged request each.
        use_cache: Read and write the index cache.
        threads: Tar files indexed at once; ``None``: :data:`LOCAL_INDEX_THREADS`, or
            ``remote.INDEX_THREADS`` (32) for URLs, whose reads wait on round trips.
        storage_options: For URLs: passed to their ``fsspec`` filesystem (credentials, endpoint).
        in_flight: For URLs: requests kept in flight (``None``: ``remote.IN_FLIGHT``).

    Raises:
        FileNotFoundError: A shard is missing.
        StorageError: A URL cannot be read (it is named), after the retries where retrying helps.
        ValueError: A shard is not a tar, or a sample has no image, no label or a label that is
            not an integer >= 0; the message names the shard and the key.
    """
    paths = expand_paths(shards)
    remote = remote_store(paths, storage_options, what="shards", in_flight=in_flight)
    if remote is not None:
        paths = remote.expand(paths, what="tar shard")
    threads = threads or (INDEX_THREADS if remote is not None else LOCAL_INDEX_THREADS)
    with ThreadPoolExecutor(max(1, min(threads, len(paths)))) as pool:
        if remote is not None:
            before = INDEXED["label requests"]
            info = functools.cache(remote.info)  # a shard left for the second pass is not asked twice
            one = functools.partial(_remote_index, remote=remote, info=info, use_cache=use_cache)
        else:
            _read_ahead(paths, use_cache)
            one = functools.partial(_local_index, use_cache=use_cache)
        parts = built_once_each(pool, paths, one)
        if remote is not None and INDEXED["label requests"] > before:
            log.warning("%d labels took one request each: their shards have no labels sidecar (.labels), which "
                        "`dali-ba index-shards` writes", INDEXED["label requests"] - before)
    index = _joined(paths, parts, remote)
    del parts
    release_freed_memory()
    return index


def _joined(paths: list[str], parts: list[TarIndex], remote: RemoteStore | None) -> SampleIndex:
    """One index over the tar files ``paths``, from their indexes ``parts``, in the smallest dtypes
    that hold them (offsets and sizes in 32 bits where every file is under 4 GiB)."""
    counts = np.array([len(part) for part in parts], dtype=np.int64)
    total = int(counts.sum())
    if not total:
        raise ValueError(f"the {len(paths)} tar shard(s) starting with {redact(paths[0])!r} hold no sample")
    wide = max(int((part.offsets + part.sizes).max()) for part in parts if len(part)) >= 2**32
    offsets = np.empty(total, dtype=np.int64 if wide else np.uint32)
    sizes = np.empty(total, dtype=np.int64 if wide else np.uint32)
    labels = np.empty(total, dtype=np.int64)
    blob_length = sum(len(part.key_blob) for part in parts)
    ends = np.empty(total, dtype=np.uint32 if blob_length < 2**32 else np.uint64)
    blob = bytearray(blob_length)
    at = blob_at = 0
    for part in parts:  # filled in place: no second copy of every column at once
        n = len(part)
        offsets[at:at + n], sizes[at:at + n], labels[at:at + n] = part.offsets, part.sizes, part.labels
        ends[at:at + n] = part.key_ends.astype(np.int64) + blob_at
        blob[blob_at:blob_at + len(part.key_blob)] = part.key_blob
        at, blob_at = at + n, blob_at + len(part.key_blob)
    files = StringTable.repeated(paths, counts)
    keys = StringTable.from_suffixes(bytes(blob), ends)
    del blob
    return indexed_by_label(
        root=redact(paths[0]) if remote is not None else Path(paths[0]),
        files=files,
        labels=labels,
        source=TarSource(files, offsets, sizes, keys, remote or LocalStore()),
    )


# -- local tar files -------------------------------------------------------------------------------


def _local_index(path: str, use_cache: bool, *, wait: bool) -> TarIndex | None:
    """The index of one local tar file; ``None`` when ``wait`` is False and another process is building it."""
    if not use_cache:
        return read_tar_headers(path)
    return _built_once(cache_entry(path), lambda: read_tar_headers(path), path, wait=wait)


def _read_ahead(paths: list[str], use_cache: bool) -> None:
    """Asks the OS to read, in the background, the files indexing ``paths`` will read: each tar
    file's cache entry where there is one, else its sidecars. On a cold page cache they then
    arrive while earlier ones are parsed, without threads contending for the interpreter lock."""
    for path in paths:
        cached = cache_entry(path) if use_cache else None
        for wanted in (cached,) if cached is not None and cached.exists() else (sidecar_path(path), labels_path(path)):
            try:
                fd = os.open(wanted, os.O_RDONLY)
            except OSError:
                continue  # missing: found out (and explained) when the file is indexed
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)


def cache_entry(path: str) -> Path:
    """The index cache entry of the local tar file ``path``: its real path, size and mtime."""
    stat = os.stat(path)
    return entry("tar-index", os.path.basename(path), os.path.realpath(path), stat.st_size, stat.st_mtime_ns,
                 INDEX_VERSION, suffix=".index")


def read_tar_headers(path: str) -> TarIndex:
    """A local tar file's index from its sidecars where current ones exist, else from a walk over its tar headers."""
    try:
        index = read_local_sidecars(path)
    except ValueError as err:
        warnings.warn(f"ignoring the sidecar index of {path!r}: {err}; reading the tar headers instead", stacklevel=5)
        index = None
    if index is not None:
        INDEXED["sidecar"] += 1
        return index
    log.info("indexing tar shard %s (no sidecar index: every tar header is read)", path)
    INDEXED["walk"] += 1
    return group_samples(path, walk_tar(path))


# -- tar files behind URLs -------------------------------------------------------------------------


def _remote_index(url: str, remote: RemoteStore, info, use_cache: bool, *, wait: bool = True) -> TarIndex | None:
    """One remote tar file's index: from the local cache (keyed by URL, size and version tag, which
    ``info(url)`` gives), else from its sidecars, else from one streaming pass over the whole file
    (logged with its cost). ``None`` where ``wait`` is False and another process is building it."""
    info = info(url)
    if not use_cache:
        return _remote_build(url, remote, info["size"])
    cached = entry("tar-index", url.rsplit("/", 1)[-1], url, info["size"], info["version"], INDEX_VERSION, suffix=".index")
    return _built_once(cached, lambda: _remote_build(url, remote, info["size"]), redact(url), wait=wait)


def _remote_build(url: str, remote: RemoteStore, size: int) -> TarIndex:
    base = stem(url)
    index = None
    text = _read_if_there(remote, base + ".idx")
    if text is not None:
        def read_members(ranges):
            INDEXED["label requests"] += len(ranges)
            return remote.read_many([(url, offset, length) for offset, length in ranges])

        try:
            index = index_from_sidecars(url, text.decode("utf-8", "surrogateescape"), _read_if_there(remote, base + ".labels"),
                                        size, read_members, labels_name=redact(base + ".labels"))
        except ValueError as err:
            warnings.warn(f"ignoring the sidecar index {redact(base)}.idx: {err}; reading the whole shard instead",
                          stacklevel=6)
    if index is None:
        start = time.perf_counter()
        with local_copy(remote, url) as local:
            index = group_samples(url, walk_tar(str(local)))
        log.warning("indexed %s by reading all of it (%.1f MB in %.1f s): no sidecar index; dali-ba index-shards writes "
                    "them", redact(url), size / 1e6, time.perf_counter() - start)
        INDEXED["walk"] += 1
    else:
        INDEXED["sidecar"] += 1
    return index


def _read_if_there(remote: RemoteStore, url: str) -> bytes | None:
    """The whole object at ``url``, or ``None`` where it does not exist (one request either way)."""
    try:
        return remote.read(url)
    except StorageError as err:
        if err.status == 404:
            return None
        raise


# -- the cache -------------------------------------------------------------------------------------


def _built_once(cached: Path, build, name: str, *, wait: bool) -> TarIndex | None:
    """A tar file's index through the cache entry ``cached`` (``cache.built_once``)."""
    return built_once(cached, build, load=_load_cached, save=lambda index: _write_cache(cached, index, name), name=name,
                      wait=wait)


def _load_cached(cached: Path) -> TarIndex | None:
    """A cache entry as :func:`_write_cache` wrote it, read with one read into one buffer (which
    the index's columns view); ``None`` for a missing or damaged one."""
    try:
        data = np.fromfile(cached, dtype=np.uint8)
    except OSError:
        return None
    head = len(_MAGIC) + 16
    if len(data) < head or data[:len(_MAGIC)].tobytes() != _MAGIC:
        return None
    count, blob = (int(n) for n in data[len(_MAGIC):head].view(np.int64))
    if len(data) != head + 28 * count + blob:
        return None  # cut short, or more than it says
    at = head
    columns = []
    for dtype, n in ((np.int64, count), (np.int64, count), (np.int64, count), (np.uint32, count)):
        size = np.dtype(dtype).itemsize * n
        columns.append(data[at:at + size].view(dtype))
        at += size
    offsets, sizes, labels, key_ends = columns
    return TarIndex(data[at:].tobytes(), key_ends, offsets, sizes, labels)


def _write_cache(cached: Path, index: TarIndex, path: str) -> None:
    """One raw buffer: a magic line, the sample count and key bytes (``int64``), then offsets,
    sizes and labels (``int64``), key ends (``uint32``) and the keys' UTF-8 bytes."""
    try:
        with written_atomically(cached) as f:
            f.write(_MAGIC + np.array([len(index), len(index.key_blob)], dtype=np.int64).tobytes())
            for column, dtype in ((index.offsets, np.int64), (index.sizes, np.int64), (index.labels, np.int64),
                                  (index.key_ends, np.uint32)):
                f.write(np.ascontiguousarray(column, dtype=dtype).tobytes())
            f.write(index.key_blob)
    except OSError as err:
        warnings.warn(f"could not cache the index of {path!r} in {str(cached.parent)!r} ({err}); it will be "
                      f"indexed again next time", stacklevel=5)
