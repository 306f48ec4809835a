"""The sample index: what every source builds, and all the stages after it know of the data.

A :class:`SampleIndex` holds, for each sample, the file that holds it (a :class:`StringTable`,
small at a million samples), its label, and the :class:`~dali_ba.sources.base.Source` that reads
its bytes. The stages after it (order, reader, decode) never ask where the index came from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import Source, describe_sample


class StringTable(Sequence):
    """A read-only sequence of many strings in little memory (file paths, tar keys).

    Each string is a prefix from a short table (its folder, or a whole shard path) and a suffix
    (its file name, or nothing) kept in one UTF-8 buffer: about ``len(suffix) + 5`` bytes a
    string, where a tuple of ``str`` takes ``len + 57``. At ImageNet's 1.28M samples that is what
    keeps the index of every rank small. Items are rebuilt on access (``table[i]`` is a new
    ``str``, equal to the one stored); slices give tuples; a table equals any sequence of the
    same strings.
    """

    __slots__ = ("_prefixes", "_ids", "_blob", "_ends", "_count")

    def __init__(self, prefixes, ids: np.ndarray | None, blob: bytes = b"", ends: np.ndarray | None = None):
        """Prefix ``ids[i]`` (every string the one prefix where ``ids`` is None) plus the suffix
        ``blob[ends[i-1]:ends[i]]`` (none where ``ends`` is None)."""
        self._prefixes = tuple(prefixes)
        self._ids = ids
        self._blob = blob
        self._ends = ends
        self._count = len(ids) if ids is not None else len(ends)

    @classmethod
    def from_suffixes(cls, blob: bytes, ends: np.ndarray, prefix: str = "") -> "StringTable":
        """Strings that are ``prefix`` plus the pieces of ``blob`` that end at ``ends`` (tar keys)."""
        return cls((prefix,), None, blob, ends)

    @classmethod
    def from_strings(cls, strings) -> "StringTable":
        """Splits each string after its last ``/``: the part up to it is the prefix."""
        prefixes: dict[str, int] = {}
        ids, suffixes = [], []
        for text in strings:
            head, sep, tail = text.rpartition("/")
            ids.append(prefixes.setdefault(head + sep, len(prefixes)))
            suffixes.append(tail)
        return cls._build(list(prefixes), ids, suffixes)

    @classmethod
    def repeated(cls, values, counts) -> "StringTable":
        """``values[k]`` repeated ``counts[k]`` times, in order (a shard's path for each of its samples)."""
        ids = np.repeat(np.arange(len(values)), np.asarray(counts, dtype=np.int64))
        return cls(values, ids.astype(_smallest_uint(len(values))))

    @classmethod
    def _build(cls, prefixes, ids, suffixes) -> "StringTable":
        joined = "".join(suffixes)
        blob = joined.encode("utf-8", "surrogateescape")
        if len(blob) == len(joined):  # ASCII: a character is a byte
            lengths = np.fromiter(map(len, suffixes), dtype=np.int64, count=len(suffixes))
        else:
            lengths = np.fromiter((len(s.encode("utf-8", "surrogateescape")) for s in suffixes), dtype=np.int64,
                                  count=len(suffixes))
        ends = np.cumsum(lengths).astype(_smallest_uint(len(blob)))
        return cls(prefixes, np.asarray(ids, dtype=_smallest_uint(len(prefixes))), blob if blob else b"",
                   ends if len(blob) else None)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[k] for k in range(*i.indices(len(self))))
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError(f"string {i} of a table of {self._count}")
        prefix = self._prefixes[self._ids[i] if self._ids is not None else 0]
        if self._ends is None:
            return prefix
        start = int(self._ends[i - 1]) if i else 0
        return prefix + self._blob[start:int(self._ends[i])].decode("utf-8", "surrogateescape")

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __eq__(self, other):
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)) or len(other) != len(self):
            return NotImplemented if not isinstance(other, Sequence) else False
        return all(a == b for a, b in zip(self, other))

    __hash__ = None

    def __repr__(self) -> str:
        return f"StringTable({len(self)} strings, {len(self._prefixes)} prefixes, {self.nbytes} bytes)"

    @property
    def nbytes(self) -> int:
        """Bytes held, the prefixes included."""
        return ((self._ids.nbytes if self._ids is not None else 0) + len(self._blob)
                + (self._ends.nbytes if self._ends is not None else 0) + sum(len(p) + 49 for p in self._prefixes))


def _smallest_uint(largest: int):
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(dtype).max:
            return dtype
    return np.uint64


@dataclass(frozen=True)
class SampleIndex:
    """The samples of one data set, wherever they are stored.

    Attributes:
        root: What was indexed (a folder, a file list, the first tar shard or Parquet file); used
            in messages.
        files: The file (or URL) that holds each sample's encoded image (a :class:`StringTable`,
            or any sequence of paths).
        labels: ``int64`` array, ``labels[i]`` is the class index of sample ``i``.
        classes: Class names, in label order.
        class_to_idx: Class name -> class index.
        source: What reads each sample's bytes (``base.Source``); ``None`` is whole local files
            (``files.FileSource``), which a hand-made index of image files wants.
        group_starts: Where the source reads in groups (Parquet row groups): ``int64``, group
            ``g`` holds samples ``group_starts[g]`` to ``group_starts[g + 1] - 1``; else ``None``.
    """

    root: Path | str
    files: Sequence[str]
    labels: np.ndarray
    classes: tuple[str, ...]
    class_to_idx: dict[str, int]
    source: Source = None
    group_starts: np.ndarray | None = None

    def __post_init__(self):
        if self.source is None:
            from .files import FileSource

            object.__setattr__(self, "source", FileSource(self.files))

    def __len__(self) -> int:
        return len(self.files)

    @property
    def nbytes(self) -> int:
        """Bytes the index holds per process: its arrays and string tables, and the source's
        per-sample arrays (its cached data not)."""
        total = self.source.nbytes
        for value in (self.files, self.labels, self.group_starts):
            if isinstance(value, (np.ndarray, StringTable)):
                total += value.nbytes
            elif value is not None:  # a plain sequence of str
                total += sys.getsizeof(value) + sum(sys.getsizeof(item) for item in set(value))
        return total

    @property
    def container(self) -> str | None:
        """What holds samples that have a key, as messages name it (``tar shard``, ``parquet file``);
        ``None`` where every sample is a whole file."""
        return self.source.container

    def key(self, i: int) -> str | None:
        """Sample ``i``'s key inside its tar shard (``row N`` in a Parquet file), or ``None`` for a whole file."""
        return self.source.key(i)

    def name(self, i: int) -> str:
        """A unique, readable name of sample ``i``: its path, or ``file:key`` inside a tar or Parquet file."""
        key = self.key(i)
        return self.files[i] if key is None else f"{self.files[i]}:{key}"

    def describe(self, i: int) -> str:
        """Sample ``i`` as an error message names it."""
        return describe_sample(self.files[i], self.key(i), self.container)

    def read(self, i: int) -> np.ndarray:
        """The encoded bytes of sample ``i`` (1-D ``uint8``).

        Raises:
            OSError: It cannot be read; the message names the file (``FileNotFoundError`` for a
                missing one), and the key or row.
        """
        return self.source.read(i).data


def indexed_by_label(*, root, files, labels, **where) -> SampleIndex:
    """A :class:`SampleIndex` whose classes are the integer labels, named ``"0"``, ``"1"``, ..."""
    labels = np.asarray(labels, dtype=np.int64)
    classes = tuple(str(c) for c in range(int(labels.max()) + 1)) if labels.size else ()
    return SampleIndex(
        root=root if "://" in str(root) else Path(root), files=files if isinstance(files, StringTable) else StringTable.from_strings(files),
        labels=labels, classes=classes,
        class_to_idx={name: c for c, name in enumerate(classes)}, **where,
    )


def release_freed_memory() -> None:
    """Hands the memory freed after building an index back to the OS (glibc's ``malloc_trim``).

    Building an index makes and frees many small buffers (a tar file's columns, its sidecar's
    text); glibc keeps what they freed in its heaps, which at ImageNet's size is about as much
    again as the index itself, in every rank (benchmarks/README.md, start-up at ImageNet scale).
    Elsewhere than glibc this does nothing.
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None  # glibc's malloc_trim, once looked up; False where there is none
