"""WebDataset tar shards as a source: index them once, then read each image with one positioned read.

Sits beside ``dataset.py`` at the start of the flow and ends in the same :class:`SampleIndex`, so
order, reader, decode and loader treat a tar sample like a file. WebDataset's convention: a
sample is the group of members of one shard that share a key (the member name up to the first
``.`` of its base name); its image is the member with an image extension (``jpg``, ``jpeg``,
``png``, ``webp``, ... see :data:`TAR_IMAGE_EXTENSIONS`), its label the ``cls`` member, an integer
in text. Other members (``json``, ``txt``, ...) are ignored.

A shard's index comes from its sidecar (``.idx`` beside it, DALI's ``wds2idx`` format, which
``make_shards`` and ``dali-ba index-shards`` write) or, without one, from a walk over its tar
headers; either way it is cached under ``cache_dir()/tar-index``, keyed on the shard's real path,
size and mtime, so a changed shard is indexed again and an unchanged one never is. The ranks of a
node that share the cache index each shard once between them.
"""

from __future__ import annotations

import contextlib
import glob
import functools
import hashlib
import io
import logging
import mmap
import os
import re
import tarfile
import tempfile
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import built_once, built_once_each, cache_dir, written_atomically
from .dataset import IMG_EXTENSIONS, SampleIndex, StringTable, indexed_by_label
from .storage import INDEX_THREADS, Fetched, RemoteStore, StorageError, is_url, redact, store_for

log = logging.getLogger(__name__)

#: Member extensions taken as the sample's image, in order of preference when a sample has several.
TAR_IMAGE_EXTENSIONS = tuple(ext.lstrip(".") for ext in IMG_EXTENSIONS)
LABEL_EXTENSION = "cls"
INDEX_VERSION = 2  # 2: keys as one UTF-8 buffer
_KEY_AND_EXTENSION = re.compile(r"^((?:.*/|)[^./][^.]*)\.([^/]*)$")  # WebDataset's base_plus_ext
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_shards(shards, *, what: str = "tar shard", param: str = "shards") -> list[str]:
    """Turns a shard pattern, or a list of paths and patterns, into existing file paths.

    A pattern may hold WebDataset brace ranges (``train-{000000..000146}.tar``, zero padding kept,
    several ranges multiply) and glob characters (``train-*.tar``); globs are sorted. ``what`` and
    ``param`` name the files and the argument in messages (``ParquetLoader`` takes files too).

    Raises:
        TypeError: ``shards`` is neither a string, a path nor a list of them.
        FileNotFoundError: A named file does not exist, or a glob matches nothing.
        ValueError: No file at all.
    """
    if isinstance(shards, (str, os.PathLike)):
        shards = [shards]
    if not isinstance(shards, (list, tuple)) or not all(isinstance(s, (str, os.PathLike)) for s in shards):
        raise TypeError(f"{param} must be a path, a pattern or a list of them, but got {shards!r}")
    paths: list[str] = []
    for pattern in map(os.fspath, shards):
        if is_url(pattern):  # checked where they are read (one request each), not here
            paths.extend(_brace_expand(pattern))
            continue
        for name in _brace_expand(os.path.expanduser(pattern)):
            if glob.has_magic(name):
                found = sorted(glob.glob(name))
                if not found:
                    raise FileNotFoundError(f"{what} pattern {name!r} matches no file")
                paths.extend(found)
            elif not os.path.isfile(name):
                raise FileNotFoundError(f"{what} {name!r} does not exist")
            else:
                paths.append(name)
    if not paths:
        raise ValueError(f"{param} is empty: expected at least one {what} path or pattern")
    return paths


def _brace_expand(pattern: str) -> list[str]:
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    first, last = match.group(1), match.group(2)
    if int(last) < int(first):
        raise ValueError(f"shard pattern {pattern!r}: range {{{first}..{last}}} runs backwards")
    width = len(first) if first.startswith("0") else 0
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [expanded for n in range(int(first), int(last) + 1) for expanded in _brace_expand(f"{head}{n:0{width}d}{tail}")]


def index_tar_shards(shards, *, use_cache: bool = True, threads: int | None = None, storage_options: dict | None = None,
                     in_flight: int | None = None) -> SampleIndex:
    """Indexes tar shards (see the module docstring) into one :class:`SampleIndex`.

    Each shard's index comes from the index cache (``cache_dir()/tar-index``), else from its
    sidecar index (DALI's ``wds2idx`` ``.idx`` file beside it, as ``make_shards`` and ``dali-ba
    index-shards`` write them: the labels are then one small read each), else from one walk over
    its tar headers. Processes that share the cache folder (the ranks of a node) build each
    shard's index once between them: a shard being indexed by one is skipped by the others,
    which index the next ones and read it from the cache at the end (a lock per shard, which the
    OS releases if its holder dies).

    Args:
        shards: As :func:`expand_shards` takes it, or URLs (``https://``, ``s3://``, ... with brace
            ranges; see ``storage.py``): their samples are then read with one ranged request each.
        use_cache: Read and write the per-shard index cache.
        threads: Shards indexed at once (reads wait on storage); ``None``: 8, or
            ``storage.INDEX_THREADS`` (32) for URLs, whose reads wait on round trips.
        storage_options: For URLs: passed to their ``fsspec`` filesystem (credentials, endpoint).
        in_flight: For URLs: requests kept in flight (``None``: ``storage.IN_FLIGHT``).

    Raises:
        FileNotFoundError: A shard is missing.
        StorageError: A URL cannot be read (it is named), after the retries where retrying helps.
        ValueError: A shard is not a tar, or a sample has no image, no label or a label that is
            not an integer >= 0; the message names the shard and the key.
    """
    paths = expand_shards(shards)
    remote = store_for(paths, storage_options, what="shards", in_flight=in_flight)
    if remote is not None:
        paths = remote.expand(paths, what="tar shard")
    threads = threads or (INDEX_THREADS if remote is not None else 8)
    with ThreadPoolExecutor(max(1, min(threads, len(paths)))) as pool:
        if remote is not None:
            before = INDEXED["label requests"]
            info = functools.cache(remote.info)  # a shard left for the second pass is not asked twice
            one = functools.partial(_remote_shard_index, remote=remote, info=info, use_cache=use_cache)
        else:
            one = functools.partial(_shard_index, use_cache=use_cache)
        parts = built_once_each(pool, paths, one)
        if remote is not None and INDEXED["label requests"] > before:
            log.warning("%d labels took one request each: their shards have no labels sidecar (.labels), which "
                        "`dali-ba index-shards` writes", INDEXED["label requests"] - before)
    counts = [len(part.offsets) for part in parts]
    if not sum(counts):
        raise ValueError(f"the {len(paths)} tar shard(s) starting with {paths[0]!r} hold no sample")
    blob_starts = np.cumsum([0] + [len(part.key_blob) for part in parts[:-1]])
    ends = np.concatenate([part.key_ends.astype(np.int64) + start for part, start in zip(parts, blob_starts)])
    blob = b"".join(part.key_blob for part in parts)
    files = StringTable.repeated(paths, counts)
    keys = StringTable.from_suffixes(blob, ends.astype(np.uint32 if len(blob) < 2**32 else np.uint64))
    offsets, sizes = np.concatenate([part.offsets for part in parts]), np.concatenate([part.sizes for part in parts])
    return indexed_by_label(
        root=redact(paths[0]) if remote is not None else paths[0],
        files=files,
        labels=np.concatenate([part.labels for part in parts]),
        offsets=offsets,
        sizes=sizes,
        keys=keys,
        store=RemoteTarSamples(remote, files, offsets, sizes, keys) if remote is not None else None,
    )


# -- shards behind URLs --------------------------------------------------------------------------------


class RemoteTarSamples:
    """The samples of tar shards behind URLs: each image one ranged request (``storage.RemoteStore``)."""

    container = "tar shard"

    def __init__(self, remote: RemoteStore, files, offsets, sizes, keys):
        self.remote, self._files, self._offsets, self._sizes, self._keys = remote, files, offsets, sizes, keys

    @property
    def bytes_read(self) -> int:
        """Bytes received from the store so far (the index's requests included)."""
        return self.remote.stats.bytes

    def read(self, i: int) -> np.ndarray:
        data = self.remote.read(self._files[i], int(self._offsets[i]), int(self._sizes[i]))
        return np.frombuffer(data, dtype=np.uint8)

    def read_many(self, indices) -> Fetched:
        """Samples ``indices`` (1-D uint8 arrays), one ranged request each, together
        (``RemoteStore.read_many``); ``requests`` on the list says how many they took."""
        ranges = [(self._files[i], int(self._offsets[i]), int(self._sizes[i])) for i in map(int, indices)]
        fetched = self.remote.read_many(ranges)
        return Fetched([np.frombuffer(data, dtype=np.uint8) for data in fetched], requests=fetched.requests)

    def key(self, i: int) -> str:
        return self._keys[i]

    def clear(self) -> None:
        """Nothing is cached here (the bench calls this on stores)."""


def _remote_shard_index(url: str, remote: RemoteStore, info, use_cache: bool, *, wait: bool = True) -> ShardIndex | None:
    """One remote shard's index: from the local cache (keyed by URL, size and version tag, which
    ``info(url)`` gives; the ranks of a node build each entry once between them, as for local
    shards), else from its sidecars, else from one streaming pass over the whole shard (logged
    with its cost). ``None`` where ``wait`` is False and another process is building it."""
    info = info(url)
    if not use_cache:
        return _remote_shard_build(url, remote, info["size"])
    digest = hashlib.sha1(url.encode()).hexdigest()[:20]
    version = hashlib.sha1(info["version"].encode()).hexdigest()[:12]
    cached = cache_dir() / "tar-index" / f"{digest}-{info['size']}-{version}-v{INDEX_VERSION}.npz"
    return _built_once(cached, lambda: _remote_shard_build(url, remote, info["size"]), redact(url), wait=wait)


def _remote_shard_build(url: str, remote: RemoteStore, size: int) -> ShardIndex:
    stem = _stem(url)
    index = None
    text = _read_if_there(remote, stem + ".idx")
    if text is not None:
        try:
            lines = _sidecar_lines(text.decode("utf-8", "surrogateescape"))
            index = _remote_sidecar(url, lines, remote, size, stem + ".labels")
        except ValueError as err:
            warnings.warn(f"ignoring the sidecar index {redact(stem)}.idx: {err}; reading the whole shard instead",
                          stacklevel=6)
    if index is None:
        start = time.perf_counter()
        with _local_copy(remote, url) as local:
            index = _samples(url, _walk_tar(str(local)))
        log.warning("indexed %s by reading all of it (%.1f MB in %.1f s): no sidecar index; dali-ba index-shards writes "
                    "them", redact(url), size / 1e6, time.perf_counter() - start)
        INDEXED["walk"] += 1
    else:
        INDEXED["sidecar"] += 1
    return index


def _remote_sidecar(url: str, lines: list[str], remote: RemoteStore, total: int, labels_url: str) -> ShardIndex:
    """A remote shard's index from its sidecar's sample lines, and its labels from the labels
    sidecar (one request) or, where there is none, from the label members' small ranges (one
    request each, together in the store's window)."""
    found = _read_if_there(remote, labels_url)
    uniform = _uniform_columns(lines, total) if found is not None else None
    if uniform is not None:  # the common case, column by column; anything amiss is explained by the path below
        keys, offsets, sizes, _, _ = uniform
        try:
            texts = _labels_lines(found.decode("utf-8", "replace"), len(keys))
        except ValueError:
            texts = []
        if len(texts) == len(keys) and all(map(bytes.isdigit, texts)):
            return ShardIndex.from_keys(keys, offsets, sizes, np.asarray(texts).astype(np.int64))
    members = _sidecar_members(lines, total)
    labels = [k for k, member in enumerate(members) if member[3]]
    texts = None
    if found is not None:
        try:
            texts = _labels_lines(found.decode("utf-8", "replace"), len(labels))
        except ValueError as err:
            warnings.warn(f"ignoring the labels sidecar {redact(labels_url)}: {err}", stacklevel=5)
    if texts is None:
        texts = remote.read_many([(url, members[k][1], members[k][2]) for k in labels])
        INDEXED["label requests"] += len(labels)
    data = dict(zip(labels, texts))
    return _samples(url, [(name, offset, size, data.get(k)) for k, (name, offset, size, _) in enumerate(members)])


def _read_if_there(remote: RemoteStore, url: str) -> bytes | None:
    """The whole object at ``url``, or ``None`` where it does not exist (one request either way)."""
    try:
        return remote.read(url)
    except StorageError as err:
        if err.status == 404:
            return None
        raise


@dataclass(frozen=True)
class ShardIndex:
    """One shard's samples: keys (UTF-8 ``key_blob`` cut at ``key_ends``), image offsets and sizes, labels."""

    key_blob: bytes
    key_ends: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray

    @classmethod
    def from_keys(cls, keys, offsets, sizes, labels) -> "ShardIndex":
        encoded = [key.encode("utf-8", "surrogateescape") for key in keys]
        ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
        return cls(b"".join(encoded), ends.astype(np.uint32), np.asarray(offsets, dtype=np.int64),
                   np.asarray(sizes, dtype=np.int64), np.asarray(labels, dtype=np.int64))

    @property
    def keys(self) -> list[str]:
        starts = np.concatenate([[0], self.key_ends[:-1]]).astype(np.int64)
        return [self.key_blob[a:b].decode("utf-8", "surrogateescape") for a, b in zip(starts, self.key_ends.astype(np.int64))]


#: How many shards this process has indexed from their bytes (sidecar or header walk), for tests
#: and logs: with a shared cache, the ranks of a node together index each shard once.
INDEXED = {"sidecar": 0, "walk": 0, "label requests": 0}


def _cache_path(path: str) -> Path:
    stat = os.stat(path)
    digest = hashlib.sha1(os.path.realpath(path).encode()).hexdigest()[:20]
    return cache_dir() / "tar-index" / f"{digest}-{stat.st_size}-{stat.st_mtime_ns}-v{INDEX_VERSION}.npz"


def _load_cached(cached: Path) -> ShardIndex | None:
    try:
        with np.load(cached) as data:
            return ShardIndex(data["key_blob"].tobytes(), data["key_ends"], data["offsets"], data["sizes"], data["labels"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # none, or damaged: (re)built by the caller


def _shard_index(path: str, use_cache: bool, *, wait: bool) -> ShardIndex | None:
    """The index of one shard; ``None`` when ``wait`` is False and another process is building it."""
    if not use_cache:
        return _read_tar_headers(path)
    return _built_once(_cache_path(path), lambda: _read_tar_headers(path), path, wait=wait)


def _built_once(cached: Path, build, name: str, *, wait: bool) -> ShardIndex | None:
    """A shard's index through the cache entry ``cached`` (``config.built_once``)."""
    return built_once(cached, build, load=_load_cached, save=lambda index: _write_cache(cached, index, name), name=name,
                      wait=wait)


def _write_cache(cached: Path, index: ShardIndex, path: str) -> None:
    try:
        with written_atomically(cached) as f:
            np.savez(f, key_blob=np.frombuffer(index.key_blob, dtype=np.uint8), key_ends=index.key_ends,
                     offsets=index.offsets, sizes=index.sizes, labels=index.labels)
    except OSError as err:
        warnings.warn(f"could not cache the index of {path!r} in {str(cached.parent)!r} ({err}); it will be "
                      f"indexed again next time", stacklevel=5)


def sidecar_path(path) -> Path:
    """Where a shard's sidecar index lies: ``train-000000.tar`` -> ``train-000000.idx`` (as ``wds2idx`` names it)."""
    return Path(path).with_suffix(".idx")


def has_sidecars(path) -> bool:
    """Whether the shard has both sidecars (:func:`sidecar_path`, :func:`labels_path`)."""
    return sidecar_path(path).exists() and labels_path(path).exists()


def labels_path(path) -> Path:
    """Where a shard's labels sidecar lies: ``train-000000.tar`` -> ``train-000000.labels``.

    Ours, beside DALI's ``.idx``: a ``dali-ba-labels v1 <count>`` first line, then the text of each
    label member the ``.idx`` lists, in its order, one per line. A shard behind a URL is then
    indexed with 3 requests (its size, ``.idx``, ``.labels``) instead of one more per sample.
    """
    return Path(path).with_suffix(".labels")


def _read_tar_headers(path: str) -> ShardIndex:
    """From the sidecar index where a current one exists, else from a walk over the tar headers."""
    sidecar = sidecar_path(path)
    if sidecar.exists():
        try:
            index = _read_sidecar(path, sidecar)
        except ValueError as err:
            warnings.warn(f"ignoring the sidecar index {str(sidecar)!r}: {err}; reading the tar headers instead", stacklevel=5)
        else:
            INDEXED["sidecar"] += 1
            return index
    log.info("indexing tar shard %s (no sidecar index: every tar header is read)", path)
    INDEXED["walk"] += 1
    return _samples(path, _walk_tar(path))


#: Preference among a sample's image members (the first found in this order is its image).
_IMAGE_RANK = {ext: rank for rank, ext in enumerate(TAR_IMAGE_EXTENSIONS)}


def _samples(path: str, members) -> ShardIndex:
    """Groups ``(name, offset, size, label_bytes)`` members into samples (WebDataset's rules).

    A member's key is its name up to the first ``.`` of its base name, its extension the rest
    (names without one, or hidden, belong to no sample), as WebDataset's ``base_plus_ext``.
    """
    found: dict[str, list] = {}  # key -> [image offset, image size, image rank, label bytes, other extensions]
    for name, offset, size, data in members:
        slash = name.rfind("/")
        dot = name.find(".", slash + 1)
        if dot <= slash + 1:
            continue  # no extension, or a hidden file: not part of any sample
        key, extension = name[:dot], name[dot + 1:].lower()
        entry = found.get(key)
        if entry is None:
            entry = found[key] = [0, 0, len(_IMAGE_RANK), None, ()]
        if extension == LABEL_EXTENSION:
            entry[3] = data
            continue
        rank = _IMAGE_RANK.get(extension)
        if rank is not None and rank < entry[2]:
            entry[0], entry[1], entry[2] = offset, size, rank
        elif rank is None:
            entry[4] += (extension,)
    keys, offsets, sizes, values = [], [], [], []
    for key, (offset, size, rank, label, others) in found.items():
        if rank == len(_IMAGE_RANK):
            has = sorted(others + ((LABEL_EXTENSION,) if label is not None else ()))
            raise ValueError(
                f"tar shard {path!r}: sample {key!r} has no image member (expected {key}.jpg or another of "
                f"{', '.join(TAR_IMAGE_EXTENSIONS)}); it has {', '.join(has) or 'nothing'}"
            )
        if label is None:
            raise ValueError(f"tar shard {path!r}: sample {key!r} has no label member {key}.{LABEL_EXTENSION}")
        text = label.strip()
        if not text.isdigit():
            text = text.decode("utf-8", errors="replace")
            raise ValueError(
                f"tar shard {path!r}: sample {key!r} has label {text[:40]!r} in {key}.{LABEL_EXTENSION}, expected an integer >= 0"
            )
        keys.append(key)
        offsets.append(offset)
        sizes.append(size)
        values.append(int(text))
    return ShardIndex.from_keys(keys, offsets, sizes, values)


_BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")


def _walk_tar(path: str):
    """Yields ``(name, data_offset, size, data)`` of each regular file of a tar, ``data`` only for labels.

    Walks the headers of a memory map of the shard, one slice per member, instead of ``tarfile``'s
    object per member (about 10x faster at a million members). Reads ustar and GNU headers, PAX
    extended headers (``path``, ``size``) and GNU long names; old (v7) tars go to ``tarfile``.

    Raises:
        ValueError: A header that is not a tar header (the shard is not a tar, or is damaged).
    """
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        if total < _BLOCK:
            raise ValueError(f"{path!r} is not a readable tar shard: it holds {total} bytes, less than one tar header")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as tar:
            position, long_name, pax = 0, None, {}
            while position + _BLOCK <= total:
                header = tar[position:position + _BLOCK]
                if header[257:262] != b"ustar":
                    if not header.strip(b"\0"):
                        return  # the end-of-archive blocks
                    if position == 0:  # an old (v7) tar, or no tar at all: tarfile knows the old formats
                        yield from _walk_tarfile(path)
                        return
                    raise ValueError(f"{path!r} is not a readable tar shard: no tar header at byte {position}")
                field = header[124:136]
                try:
                    size = int(field.rstrip(b"\0 ") or b"0", 8)
                except ValueError:
                    size = _number(field, path, position)
                kind = header[156:157]
                data_at = position + _BLOCK
                position = data_at + -(-size // _BLOCK) * _BLOCK
                if kind in (b"x", b"L", b"g"):
                    data = tar[data_at:data_at + size]
                    if kind == b"x":
                        pax = _pax_records(data)
                    elif kind == b"L":
                        long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
                    continue
                if kind in _REGULAR:
                    name = pax.get("path") or long_name
                    if name is None:
                        name = header[:100].split(b"\0", 1)[0]
                        if header[345] != 0:
                            name = header[345:500].split(b"\0", 1)[0] + b"/" + name
                        name = name.decode("utf-8", "surrogateescape")
                    if "size" in pax:
                        size = int(pax["size"])
                        position = data_at + -(-size // _BLOCK) * _BLOCK
                    if position > total:
                        raise ValueError(f"{path!r} is cut short: member {name!r} ends at byte {data_at + size}, past its "
                                         f"{total} bytes")
                    label = tar[data_at:data_at + size] if name[-4:].lower() == "." + LABEL_EXTENSION else None
                    yield name, data_at, size, label
                long_name, pax = None, {}


def _walk_tarfile(path: str):
    """:func:`_walk_tar` through ``tarfile``, for the tar formats without a ustar header."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    label = tar.extractfile(member).read() if member.name.lower().endswith("." + LABEL_EXTENSION) else None
                    yield member.name, member.offset_data, member.size, label
    except tarfile.ReadError as err:
        raise ValueError(f"{path!r} is not a readable tar shard: {err}") from None


def _number(field: bytes, path: str, position: int) -> int:
    """A tar header's number field: octal text, or GNU's base-256 for large values."""
    if field[0] & 0x80:  # GNU base-256, for members over 8 GB
        return int.from_bytes(field[1:], "big")
    try:
        return int(field.strip(b"\0 ") or b"0", 8)
    except ValueError:
        raise ValueError(f"{path!r} is not a readable tar shard: bad size field at byte {position}") from None


def _pax_records(data: bytes) -> dict[str, str]:
    records, at = {}, 0
    while at < len(data):
        space = data.find(b" ", at)
        if space < 0:
            break
        length = int(data[at:space])
        key, _, value = data[space + 1:at + length - 1].partition(b"=")
        records[key.decode()] = value.decode("utf-8", "surrogateescape")
        at += length
    return records


def _uniform_sidecar(lines: list[str], tar, total: int) -> ShardIndex | None:
    """A local shard's index from the common sidecar (:func:`_uniform_columns`), its labels read
    from ``tar`` (the shard, mapped); ``None`` for any other, which the general path then reads
    (and explains, where something is wrong)."""
    columns = _uniform_columns(lines, total)
    if columns is None:
        return None
    keys, offsets, sizes, label_offsets, label_sizes = columns
    texts = b" ".join(tar[o:o + n].strip() for o, n in zip(label_offsets.tolist(), label_sizes.tolist())).split(b" ")
    if len(texts) != len(keys) or not all(map(bytes.isdigit, texts)):
        return None
    for k in (0, len(keys) - 1):  # the sidecar of another version of the shard names other bytes
        header = tar[int(offsets[k]) - _BLOCK:int(offsets[k])] if offsets[k] >= _BLOCK else b""
        if header[257:262] != b"ustar" or _number(header[124:136], "", 0) != sizes[k]:
            return None
    return ShardIndex.from_keys(keys, offsets, sizes, np.asarray(texts).astype(np.int64))


def _uniform_columns(lines: list[str], total: int):
    """The common sidecar, every sample an image and a label in the same order, parsed column by
    column (about 3x faster than line by line at a million samples): ``(keys, image offsets,
    image sizes, label offsets, label sizes)``, or ``None`` for any other sidecar."""
    tokens = " ".join(lines).split(" ")
    if len(tokens) != 8 * len(lines) or not lines:
        return None
    image, label = (0, 4) if tokens[4].lower() == LABEL_EXTENSION else (4, 0)
    if tokens[image].lower() not in _IMAGE_RANK or tokens[label].lower() != LABEL_EXTENSION:
        return None
    if len(set(tokens[image::8])) != 1 or len(set(tokens[label::8])) != 1:
        return None
    cut = len(tokens[image]) + 1
    names, label_names = tokens[image + 3::8], tokens[label + 3::8]
    keys = [name[:-cut] for name in names]
    if any(not key or key[-1] == "/" or "." in key[key.rfind("/") + 1:] for key in keys) or len(set(keys)) != len(keys):
        return None  # keys WebDataset would cut elsewhere, or samples split over several lines
    if any(other != key + "." + tokens[label] for other, key in zip(label_names, keys)):
        return None
    try:
        columns = [np.asarray(tokens[k::8]).astype(np.int64) for k in (image + 1, image + 2, label + 1, label + 2)]
    except ValueError:
        return None
    offsets, sizes, label_offsets, label_sizes = columns
    if max(int((offsets + sizes).max()), int((label_offsets + label_sizes).max())) > total:
        return None
    return keys, offsets, sizes, label_offsets, label_sizes


# -- sidecar indexes (DALI's wds2idx format) ---------------------------------------------------------

SIDECAR_VERSION = "v1.2"
LABELS_VERSION = "dali-ba-labels v1"


def shards_to_index(shards, *, force: bool = False, storage_options: dict | None = None) -> tuple[list[str], list[str]]:
    """``(every shard, the shards without both sidecars)`` (every shard again with ``force``) of
    ``shards``, paths or URLs as :func:`index_tar_shards` takes them; behind URLs, two requests a
    shard say whether its sidecars exist."""
    paths, todo, _ = _shards_to_index(shards, force, storage_options)
    return paths, todo


def _shards_to_index(shards, force: bool, storage_options: dict | None):
    paths = expand_shards(shards)
    remote = store_for(paths, storage_options, what="shards")
    if remote is None:
        return paths, [p for p in paths if force or not has_sidecars(p)], None
    paths = remote.expand(paths, what="tar shard")
    if force:
        return paths, paths, remote
    with ThreadPoolExecutor(min(INDEX_THREADS, len(paths))) as pool:
        complete = list(pool.map(lambda url: all(remote.exists(_stem(url) + ext) for ext in (".idx", ".labels")), paths))
    return paths, [url for url, done in zip(paths, complete) if not done], remote


def write_sidecars(shards, *, jobs: int | None = None, force: bool = False, progress=None,
                   storage_options: dict | None = None) -> list[str]:
    """Writes the sidecars (:func:`write_sidecar`) of every shard that lacks one (or of every
    shard, with ``force``) and returns the sidecar indexes written.

    For shards made elsewhere; local shards are indexed ``jobs`` at a time in worker processes (the
    walk over tar headers is Python work). Shards behind URLs (``storage_options`` as
    :func:`index_tar_shards` takes them) are each read once, whole, and their sidecars written
    beside them through the store, ``jobs`` at a time (default 4), ``.labels`` before ``.idx``;
    that needs write access (HTTP servers rarely give it: the error says so).
    """
    from concurrent.futures import ProcessPoolExecutor

    _, paths, remote = _shards_to_index(shards, force, storage_options)
    if not paths:
        return []
    written = []
    if remote is not None:
        with ThreadPoolExecutor(max(1, min(jobs or 4, len(paths)))) as pool:
            for sidecar in pool.map(functools.partial(_write_remote_sidecars, remote), paths):
                written.append(sidecar)
                if progress:
                    progress(1)
        return written
    jobs = max(1, min(jobs or len(os.sched_getaffinity(0)), len(paths)))
    if jobs == 1:
        for path in paths:
            written.append(str(write_sidecar(path)))
            if progress:
                progress(1)
        return written
    with ProcessPoolExecutor(jobs) as pool:
        for sidecar in pool.map(write_sidecar, paths, chunksize=max(1, len(paths) // (8 * jobs))):
            written.append(str(sidecar))
            if progress:
                progress(1)
    return written


def _write_remote_sidecars(remote: RemoteStore, url: str) -> str:
    """Writes the sidecars of the shard at ``url`` beside it (the shard is read once, whole)."""
    stem = _stem(url)
    with _local_copy(remote, url) as local:
        sidecar = write_sidecar(local)
        remote.write(stem + ".labels", labels_path(local).read_bytes())  # first: with .idx there, both are
        remote.write(stem + ".idx", sidecar.read_bytes())
    return redact(stem + ".idx")


def _stem(url: str) -> str:
    """``url`` without its extension: ``.../train-000000.tar`` -> ``.../train-000000``."""
    return url[: url.rfind(".")] if url.rfind(".") > url.rfind("/") else url


@contextlib.contextmanager
def _local_copy(remote: RemoteStore, url: str):
    """A temporary file holding the whole object ``url`` (one request, streamed to disk), removed after the block."""
    with tempfile.TemporaryDirectory(prefix="dali-ba-shard-") as folder:
        local = Path(folder) / "shard.tar"
        remote.download(url, local)
        yield local


def write_sidecar(path, sidecar=None, labels=None) -> Path:
    """Writes the shard's sidecar index in DALI's ``wds2idx`` format (``v1.2``), and its labels
    sidecar (:func:`labels_path`), and returns the index's path.

    One line per sample, in tar order: ``ext offset size name`` for each of its members, after a
    ``v1.2 <samples>`` first line; ``fn.readers.webdataset`` reads the same file. Each is written
    under a temporary name and renamed, so a reader never sees half of one.
    """
    path = os.fspath(path)
    sidecar = Path(sidecar) if sidecar is not None else sidecar_path(path)
    labels = Path(labels) if labels is not None else sidecar.with_suffix(".labels")
    samples: dict[str, list[str]] = {}
    texts: dict[str, list[str]] = {}
    for name, offset, size, data in _walk_tar(path):
        base = name.rsplit("/", 1)[-1]
        dot = name.find(".", len(name) - len(base))
        if dot <= len(name) - len(base):  # no extension, or a hidden file: not part of a sample
            continue
        key, extension = name[:dot], name[dot + 1:]
        samples.setdefault(key, []).append(f"{extension} {offset} {size} {name}")
        if extension.lower() == LABEL_EXTENSION:  # what _sidecar_members takes for a label
            texts.setdefault(key, []).append(data.decode("utf-8", "replace").strip().replace("\n", " "))
    if not samples:
        raise ValueError(f"tar shard {path!r} holds no sample to index")
    in_order = [text for key in samples for text in texts.get(key, ())]
    _write_text(labels, f"{LABELS_VERSION} {len(in_order)}\n" + "".join(t + "\n" for t in in_order))
    _write_text(sidecar, f"{SIDECAR_VERSION} {len(samples)}\n" + "".join(" ".join(parts) + "\n" for parts in samples.values()))
    return sidecar


def _write_text(path: Path, text: str) -> None:
    with written_atomically(path, "w", permissions=0o644, encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)


def _labels_lines(text: str, count: int) -> list[bytes]:
    """The label texts of a labels sidecar, after checking its first line and that it has ``count``.

    Raises:
        ValueError: Another format, or not ``count`` labels.
    """
    lines = text.split("\n")
    if not lines[0].startswith(LABELS_VERSION + " ") or lines[-1] != "":
        raise ValueError(f"expected a first line '{LABELS_VERSION} <count>' and whole lines")
    labels = lines[1:-1]
    if lines[0].split()[-1] != str(len(labels)) or len(labels) != count:
        raise ValueError(f"it holds {len(labels)} labels, the sidecar index lists {count} label members")
    return [label.encode() for label in labels]


def _sidecar_lines(text: str) -> list[str]:
    """The sample lines of a sidecar's text, after checking its ``v1.2 <samples>`` first line.

    Raises:
        ValueError: Another format, or a sample count that is not the number of lines.
    """
    lines = text.splitlines()
    head = lines[0].split() if lines else []
    if len(head) != 2 or head[0] != SIDECAR_VERSION or not head[1].isdigit():
        raise ValueError(f"expected a first line '{SIDECAR_VERSION} <samples>', got {' '.join(head)[:40]!r}")
    if len(lines) - 1 != int(head[1]):
        raise ValueError(f"it announces {head[1]} samples but lists {len(lines) - 1}")
    return lines[1:]


def _sidecar_members(lines: list[str], total: int) -> list[tuple[str, int, int, bool]]:
    """``(name, offset, size, is_label)`` of every member the sample lines list, in order.

    Raises:
        ValueError: A line that is not groups of ``ext offset size name``, or a member past ``total`` bytes.
    """
    members = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) % 4:
            raise ValueError(f"a line of {len(fields)} fields, expected groups of 4: {line[:80]!r}")
        for k in range(0, len(fields), 4):
            extension, offset, size, name = fields[k], int(fields[k + 1]), int(fields[k + 2]), fields[k + 3]
            if offset + size > total:
                raise ValueError(f"member {name!r} ends at byte {offset + size}, past the shard's {total}")
            members.append((name, offset, size, extension.lower() == LABEL_EXTENSION))
    return members


def _read_sidecar(path: str, sidecar: Path) -> ShardIndex:
    """A shard's index from its sidecar; the labels are read from the shard (one small read each).

    Raises:
        ValueError: The sidecar is not ``v1.2``, or it names bytes past the shard's end or a
            first member that is not where it says (it belongs to another version of the shard).
    """
    lines = _sidecar_lines(sidecar.read_text(encoding="utf-8", errors="surrogateescape"))
    total = os.stat(path).st_size
    with open(path, "rb") as shard, (mmap.mmap(shard.fileno(), 0, access=mmap.ACCESS_READ) if total
                                     else contextlib.nullcontext(b"")) as tar:
        index = _uniform_sidecar(lines, tar, total) if total else None
        if index is not None:
            return index
        members = [(name, offset, size, tar[offset:offset + size] if label else None)
                   for name, offset, size, label in _sidecar_members(lines, total)]
        # A sidecar of another version of the shard names other bytes: the header of its first and
        # of its last member must be where it says, with the size it says.
        for name, offset, size, _ in (members[0], members[-1]) if members else ():
            header = tar[offset - _BLOCK:offset] if offset >= _BLOCK else b""
            if header[257:262] != b"ustar" or _number(header[124:136], path, offset - _BLOCK) != size:
                raise ValueError(f"the shard has no {size}-byte member {name!r} at byte {offset}: the sidecar belongs "
                                 f"to another version of it")
    return _samples(path, members)


def sample_key(index: SampleIndex, i: int) -> str:
    """The WebDataset key for file ``i`` of an ImageFolder index: its path under the root, without
    extension, with dots (which would end a key) replaced by ``_``."""
    relative = os.path.relpath(index.files[i], index.root)
    stem = relative[: -len(os.path.splitext(relative)[1]) or None]
    return stem.replace(os.sep, "/").replace(".", "_")


def make_shards(index: SampleIndex, out: str | os.PathLike, *, shard_size: int, prefix: str = "shard",
                shuffle: bool = True, seed: int = 0, progress=None) -> list[Path]:
    """Writes the whole-file samples of ``index`` as WebDataset tar shards.

    Each sample becomes ``<key>.<ext>`` (the image file's bytes, unchanged) and ``<key>.cls`` (its
    label). With ``shuffle`` the samples are spread over the shards in a random order drawn from
    ``seed``, as WebDataset readers that stream shards expect. Each shard gets its sidecar index
    (``.idx``, DALI's ``wds2idx`` format), so that its first use reads no tar header. Shards are written under a
    temporary name and renamed when complete, so an interrupted run leaves no half shard behind.

    Args:
        index: Samples to write; each must be a whole file (an ImageFolder or file-list index).
        out: Folder for ``<prefix>-000000.tar``, ``<prefix>-000001.tar``, ...
        shard_size: Samples per shard (the last one may hold fewer).
        prefix: Start of each shard's name.
        shuffle, seed: Order of the samples over the shards.
        progress: ``progress(n)`` is called after every ``n`` samples written.

    Returns:
        The shards written, in order.

    Raises:
        ValueError: ``shard_size`` < 1, the index is already a tar index, or two files would get
            the same key.
    """
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be an int >= 1, but got {shard_size!r}")
    if index.offsets is not None:
        raise ValueError("make_shards takes whole files (an ImageFolder or a file list), not samples that are already in tars")
    keys = [sample_key(index, i) for i in range(len(index))]
    duplicates = len(keys) - len(set(keys))
    if duplicates:
        seen: set[str] = set()
        clash = next(key for key in keys if key in seen or seen.add(key))
        raise ValueError(f"{duplicates} files map to an existing key, e.g. {clash!r}: keys are paths without extension, "
                         f"dots replaced by '_'; rename one of the files")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(index)) if shuffle else np.arange(len(index))
    written = []
    for number, start in enumerate(range(0, len(order), shard_size)):
        path = out / f"{prefix}-{number:06d}.tar"
        partial = path.with_suffix(".tar.tmp")
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for i in order[start : start + shard_size]:
                extension = os.path.splitext(index.files[i])[1].lstrip(".").lower()
                _add(tar, f"{keys[i]}.{extension}", index.read(int(i)).tobytes())
                _add(tar, f"{keys[i]}.{LABEL_EXTENSION}", str(int(index.labels[i])).encode())
                if progress:
                    progress(1)
        write_sidecar(partial, sidecar_path(path))
        os.replace(partial, path)
        written.append(path)
    return written


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # fixed metadata: same input, same bytes
    tar.addfile(info, io.BytesIO(data))
