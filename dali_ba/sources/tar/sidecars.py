"""Sidecar indexes of tar shards: DALI's ``wds2idx`` ``.idx`` and dali-ba's ``.labels``, read and written.

A shard's ``.idx`` (DALI's ``wds2idx`` format, which ``fn.readers.webdataset`` reads too) lists
every member's offset and size; its ``.labels`` (ours) holds the text of every label member. With
both, a shard is indexed without reading the shard: locally, two small files and two tar headers
checked; behind a URL, three requests. ``make_shards`` writes both; ``dali-ba index-shards``
(:func:`write_sidecars`) writes them for shards made elsewhere, also behind URLs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..cache import written_atomically
from ..patterns import expand_paths
from ..remote import INDEX_THREADS, RemoteStore
from ..store import redact, remote_store
from .members import IMAGE_RANK, LABEL_EXTENSION, TarIndex, group_samples
from .walker import BLOCK, header_matches, walk_tar

SIDECAR_VERSION = "v1.2"
LABELS_VERSION = "dali-ba-labels v1"


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


def stem(url: str) -> str:
    """``url`` without its extension: ``.../train-000000.tar`` -> ``.../train-000000``."""
    return url[: url.rfind(".")] if url.rfind(".") > url.rfind("/") else url


# -- reading ---------------------------------------------------------------------------------------


def index_from_sidecars(name: str, idx_text: str, labels_text: bytes | None, total: int, read_members, *,
                        labels_name: str = "") -> TarIndex:
    """A tar file's index from its sidecar's text, and its labels from the labels sidecar's, or,
    where that is missing (``None``) or does not fit, from the label members themselves:
    ``read_members([(offset, size), ...]) -> [bytes, ...]`` reads them from the tar.

    The common sidecar (an image and a label a sample) is parsed column by column; anything else,
    or anything amiss there, goes through the general path, which names what is wrong.

    Raises:
        ValueError: A sidecar that is not ``v1.2``, names bytes past the tar's ``total``, or a
            sample without an image or a label, or with a label that is not an integer >= 0.
    """
    lines = sidecar_lines(idx_text)
    texts = None
    if labels_text is not None:
        try:
            texts = labels_lines(labels_text)
        except ValueError as err:
            warnings.warn(f"ignoring the labels sidecar {labels_name}: {err}", stacklevel=4)

    def fitting(count: int):
        """The labels sidecar's texts where it lists ``count`` labels, else ``None`` (with a warning)."""
        if texts is not None and len(texts) != count:
            warnings.warn(f"ignoring the labels sidecar {labels_name}: it holds {len(texts)} labels, the sidecar index "
                          f"lists {count} label members", stacklevel=5)
            return None
        return texts

    found = None
    uniform = uniform_columns(lines, total)
    if uniform is not None:
        keys, offsets, sizes, label_offsets, label_sizes = uniform
        found = fitting(len(keys))
        if found is None:
            found = [data.strip() for data in read_members(list(zip(label_offsets.tolist(), label_sizes.tolist())))]
        labels = _integers(found)
        if labels is not None:
            return TarIndex.from_keys(keys, offsets, sizes, labels)
    members = sidecar_members(lines, total)
    labels = [k for k, member in enumerate(members) if member[3]]
    if found is None:  # (the uniform path's labels are the same, in the same order)
        found = fitting(len(labels))
        if found is None:
            found = read_members([(members[k][1], members[k][2]) for k in labels])
    data = dict(zip(labels, found))
    return group_samples(name, [(member, offset, size, data.get(k)) for k, (member, offset, size, _) in enumerate(members)])


def read_local_sidecars(path: str) -> TarIndex | None:
    """A local tar file's index from its sidecars (:func:`index_from_sidecars`), or ``None`` where it has no ``.idx``.

    Two small files are read, and the tar headers of the first and last image, which must be
    where the sidecar says (a sidecar of another version of the tar names other bytes); label
    members are read from the tar only where the ``.labels`` sidecar is missing. Every read is a
    ``pread``, which releases the interpreter lock while it waits on storage.

    Raises:
        ValueError: As :func:`index_from_sidecars`, or the headers are not where the sidecar says.
    """
    try:
        idx_text = sidecar_path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None
    try:
        labels_text = labels_path(path).read_bytes()
    except FileNotFoundError:
        labels_text = None
    fd = os.open(path, os.O_RDONLY)
    try:
        total = os.fstat(fd).st_size
        index = index_from_sidecars(path, idx_text, labels_text, total,
                                    lambda ranges: [os.pread(fd, size, offset) for offset, size in ranges],
                                    labels_name=repr(str(labels_path(path))))
        for k in {0, len(index) - 1} if len(index) else ():
            offset, size = int(index.offsets[k]), int(index.sizes[k])
            if offset < BLOCK or not header_matches(os.pread(fd, BLOCK, offset - BLOCK), size):
                raise ValueError(f"the shard has no {size}-byte member at byte {offset}: the sidecar belongs to another "
                                 f"version of it")
    finally:
        os.close(fd)
    return index


def labels_lines(text: bytes) -> list[bytes]:
    """The label texts of a labels sidecar, after checking its first line and its count.

    Raises:
        ValueError: Another format, or not as many labels as its first line says.
    """
    lines = text.split(b"\n")
    if not lines[0].startswith(LABELS_VERSION.encode() + b" ") or lines[-1] != b"":
        raise ValueError(f"expected a first line '{LABELS_VERSION} <count>' and whole lines")
    labels = lines[1:-1]
    if lines[0].split()[-1] != str(len(labels)).encode():
        raise ValueError(f"its first line announces {lines[0].split()[-1].decode('utf-8', 'replace')} labels, it holds "
                         f"{len(labels)}")
    return labels


def sidecar_lines(text: str) -> list[str]:
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


def sidecar_members(lines: list[str], total: int) -> list[tuple[str, int, int, bool]]:
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


def uniform_columns(lines: list[str], total: int):
    """The common sidecar, every sample an image and a label in the same order, parsed column by
    column with string and array operations rather than line by line (the index of ImageNet's
    1.28M samples is mostly this): ``(keys, image offsets, image sizes, label offsets, label
    sizes)``, or ``None`` for any other sidecar, which the general path then reads."""
    tokens = " ".join(lines).split(" ")
    if len(tokens) != 8 * len(lines) or not lines:
        return None
    image, label = (0, 4) if tokens[4].lower() == LABEL_EXTENSION else (4, 0)
    if tokens[image].lower() not in IMAGE_RANK or tokens[label].lower() != LABEL_EXTENSION:
        return None
    if len(set(tokens[image::8])) != 1 or len(set(tokens[label::8])) != 1:
        return None
    cut = len(tokens[image]) + 1
    names, label_names = tokens[image + 3::8], tokens[label + 3::8]
    keys = [name[:-cut] for name in names]
    joined = "\n".join(keys)
    # Keys WebDataset would cut elsewhere (empty, a folder, a dot in the base name), or samples
    # split over several lines (a key twice), or labels of other keys: the general path explains.
    if ("\n\n" in f"\n{joined}\n" or "/\n" in f"{joined}\n" or ("." in joined and _DOT_IN_BASE_NAME.search(joined))
            or len(set(keys)) != len(keys)):
        return None
    if "\n".join(label_names) != f".{tokens[label]}\n".join(keys) + f".{tokens[label]}":
        return None
    columns = [_integers(tokens[k::8]) for k in (image + 1, image + 2, label + 1, label + 2)]
    if any(column is None for column in columns):
        return None
    offsets, sizes, label_offsets, label_sizes = columns
    if max(int((offsets + sizes).max()), int((label_offsets + label_sizes).max())) > total:
        return None
    return keys, offsets, sizes, label_offsets, label_sizes


#: In keys joined by newlines: a dot in a key's base name.
_DOT_IN_BASE_NAME = re.compile(r"\.[^/\n]*$", re.MULTILINE)


def _integers(texts: list[str] | list[bytes]) -> np.ndarray | None:
    """``texts`` (decimal integers >= 0, as ``str`` or ``bytes``) as ``int64``, parsed in one
    call; ``None`` if one is not (``fromstring`` itself would stop there without an error)."""
    if not texts:
        return None
    space = b" " if isinstance(texts[0], bytes) else " "
    joined = space[:0].join(texts)
    if not (joined.isascii() and joined.isdigit()):
        return None
    spaced = space.join(texts)
    return np.fromstring(spaced if isinstance(spaced, str) else spaced.decode("ascii"), dtype=np.int64, sep=" ")


# -- writing ---------------------------------------------------------------------------------------


def shards_to_index(shards, *, force: bool = False, storage_options: dict | None = None) -> tuple[list[str], list[str]]:
    """``(every shard, the shards without both sidecars)`` (every shard again with ``force``) of
    ``shards``, paths or URLs as :func:`index_tar_shards` takes them; behind URLs, two requests a
    shard say whether its sidecars exist."""
    paths, todo, _ = shards_with_store(shards, force, storage_options)
    return paths, todo


def shards_with_store(shards, force: bool, storage_options: dict | None):
    """``(every shard, the shards to index, the remote store or None)``, as :func:`shards_to_index`."""
    paths = expand_paths(shards)
    remote = remote_store(paths, storage_options, what="shards")
    if remote is None:
        return paths, [p for p in paths if force or not has_sidecars(p)], None
    paths = remote.expand(paths, what="tar shard")
    if force:
        return paths, paths, remote
    with ThreadPoolExecutor(min(INDEX_THREADS, len(paths))) as pool:
        complete = list(pool.map(lambda url: all(remote.exists(stem(url) + ext) for ext in (".idx", ".labels")), paths))
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

    _, paths, remote = shards_with_store(shards, force, storage_options)
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
    base = stem(url)
    with local_copy(remote, url) as local:
        sidecar = write_sidecar(local)
        remote.write(base + ".labels", labels_path(local).read_bytes())  # first: with .idx there, both are
        remote.write(base + ".idx", sidecar.read_bytes())
    return redact(base + ".idx")


@contextlib.contextmanager
def local_copy(remote: RemoteStore, url: str):
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
    for name, offset, size, data in walk_tar(path):
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
