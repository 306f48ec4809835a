"""WebDataset tar shards as a source: index them once, then read each image with one positioned read.

Sits beside ``dataset.py`` at the start of the flow and ends in the same :class:`SampleIndex`, so
order, reader, decode and loader treat a tar sample like a file. WebDataset's convention: a
sample is the group of members of one shard that share a key (the member name up to the first
``.`` of its base name); its image is the member with an image extension (``jpg``, ``jpeg``,
``png``, ``webp``, ... see :data:`TAR_IMAGE_EXTENSIONS`), its label the ``cls`` member, an integer
in text. Other members (``json``, ``txt``, ...) are ignored.

Indexing reads every tar header (and the small ``cls`` members) once; the index of each shard is
cached under ``cache_dir()/tar-index``, keyed on the shard's real path, size and mtime, so a
changed shard is indexed again and an unchanged one never is.
"""

from __future__ import annotations

import glob
import hashlib
import io
import logging
import os
import re
import tarfile
import tempfile
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .config import cache_dir
from .dataset import IMG_EXTENSIONS, SampleIndex, indexed_by_label

log = logging.getLogger(__name__)

#: Member extensions taken as the sample's image, in order of preference when a sample has several.
TAR_IMAGE_EXTENSIONS = tuple(ext.lstrip(".") for ext in IMG_EXTENSIONS)
LABEL_EXTENSION = "cls"
INDEX_VERSION = 1
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


def index_tar_shards(shards, *, use_cache: bool = True, threads: int = 8) -> SampleIndex:
    """Indexes tar shards (see the module docstring) into one :class:`SampleIndex`.

    Args:
        shards: As :func:`expand_shards` takes it.
        use_cache: Read and write the per-shard index cache.
        threads: Shards indexed at once (indexing is mostly waiting on storage).

    Raises:
        FileNotFoundError: A shard is missing.
        ValueError: A shard is not a tar, or a sample has no image, no label or a label that is
            not an integer >= 0; the message names the shard and the key.
    """
    paths = expand_shards(shards)
    with ThreadPoolExecutor(max(1, min(threads, len(paths)))) as pool:
        parts = list(pool.map(lambda path: _shard_index(path, use_cache), paths))
    keys, offsets, sizes, labels = zip(*parts)
    files = [path for path, shard_keys in zip(paths, keys) for _ in shard_keys]
    if not files:
        raise ValueError(f"the {len(paths)} tar shard(s) starting with {paths[0]!r} hold no sample")
    return indexed_by_label(
        root=paths[0],
        files=files,
        labels=np.concatenate(labels),
        offsets=np.concatenate(offsets),
        sizes=np.concatenate(sizes),
        keys=tuple(key for shard_keys in keys for key in shard_keys),
    )


def _cache_path(path: str) -> Path:
    stat = os.stat(path)
    digest = hashlib.sha1(os.path.realpath(path).encode()).hexdigest()[:20]
    return cache_dir() / "tar-index" / f"{digest}-{stat.st_size}-{stat.st_mtime_ns}-v{INDEX_VERSION}.npz"


def _shard_index(path: str, use_cache: bool):
    cached = _cache_path(path) if use_cache else None
    if cached is not None and cached.exists():
        try:
            with np.load(cached) as data:
                return tuple(data["keys"].tolist()), data["offsets"], data["sizes"], data["labels"]
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # a damaged cache entry is rebuilt below
    log.info("indexing tar shard %s", path)
    keys, offsets, sizes, labels = _read_tar_headers(path)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            # A name no other writer can have: on a shared cache, processes on different hosts (or
            # in containers) often share small pids, so the pid alone is not enough.
            fd, partial = tempfile.mkstemp(dir=cached.parent, prefix=f"{cached.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, keys=np.asarray(keys, dtype=str), offsets=offsets, sizes=sizes, labels=labels)
                os.replace(partial, cached)  # atomic: readers see the whole index or none
            except BaseException:
                os.unlink(partial)
                raise
        except OSError as err:
            warnings.warn(f"could not cache the index of {path!r} in {str(cached.parent)!r} ({err}); it will be "
                          f"indexed again next time", stacklevel=3)
    return tuple(keys), offsets, sizes, labels


def _read_tar_headers(path: str):
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    labels: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                match = _KEY_AND_EXTENSION.match(member.name)
                if match is None:
                    continue  # no extension: not part of any sample
                key, extension = match.group(1), match.group(2).lower()
                if extension == LABEL_EXTENSION:
                    labels[key] = tar.extractfile(member).read()
                samples.setdefault(key, {})[extension] = member
    except tarfile.ReadError as err:
        raise ValueError(f"{path!r} is not a readable tar shard: {err}") from None
    keys, offsets, sizes, values = [], [], [], []
    for key, members in samples.items():
        image = next((members[ext] for ext in TAR_IMAGE_EXTENSIONS if ext in members), None)
        if image is None:
            raise ValueError(
                f"tar shard {path!r}: sample {key!r} has no image member (expected {key}.jpg or another of "
                f"{', '.join(TAR_IMAGE_EXTENSIONS)}); it has {', '.join(sorted(members))}"
            )
        if key not in labels:
            raise ValueError(f"tar shard {path!r}: sample {key!r} has no label member {key}.{LABEL_EXTENSION}")
        text = labels[key].decode("utf-8", errors="replace").strip()
        if not text.isdigit():
            raise ValueError(
                f"tar shard {path!r}: sample {key!r} has label {text[:40]!r} in {key}.{LABEL_EXTENSION}, expected an integer >= 0"
            )
        keys.append(key)
        offsets.append(image.offset_data)
        sizes.append(image.size)
        values.append(int(text))
    return keys, np.asarray(offsets, dtype=np.int64), np.asarray(sizes, dtype=np.int64), np.asarray(values, dtype=np.int64)


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
    ``seed``, as WebDataset readers that stream shards expect. Shards are written under a
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
        os.replace(partial, path)
        written.append(path)
    return written


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # fixed metadata: same input, same bytes
    tar.addfile(info, io.BytesIO(data))
