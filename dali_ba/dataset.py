"""Finding the samples: the first stage of the flow, before anything is read or decoded.

Every source ends in one :class:`SampleIndex`: for each sample, the file that holds its encoded
image, where in that file the image lies, and its label. The stages after it (order, reader,
decode) never ask where the index came from:

* ``scan_image_folder`` walks a torchvision ``ImageFolder`` tree (one sub-folder per class),
  following torchvision's rules, so ``class_to_idx`` is what ``torchvision.datasets.ImageFolder``
  gives. Each sample is a whole file.
* ``read_file_list`` reads a ``path label`` list (DALI's ``file_list`` format). Whole files.
* ``shards.index_tar_shards`` indexes WebDataset tar shards: each sample is a byte range of a tar.
* ``parquet.index_parquet`` indexes Parquet files (Hugging Face ``datasets``): each sample is a
  row, read through a row-group store (``store``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Extensions taken as images, matched case-insensitively (torchvision's IMG_EXTENSIONS).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


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
        root: What was indexed (a folder, a file list, the first tar shard); used in messages.
        files: The file that holds each sample's encoded image (a :class:`StringTable`, or any
            sequence of paths).
        labels: ``int64`` array, ``labels[i]`` is the class index of sample ``i``.
        classes: Class names, in label order.
        class_to_idx: Class name -> class index.
        offsets: ``int64`` byte offset of each image inside its file, or ``None`` when every
            sample is a whole file.
        sizes: ``int64`` byte size of each image (with ``offsets``), else ``None``.
        keys: Each sample's key inside its tar shard (WebDataset's ``__key__``), else ``None``
            (a :class:`StringTable`, or any sequence of strings).
        store: Where the bytes come from when a sample is not a byte range of a file (Parquet
            rows): an object with ``read(i)``, ``key(i)`` and ``container`` (how messages name
            the file); ``None`` for files and tar shards.
        group_starts: With a ``store`` that reads in groups (Parquet row groups): ``int64``,
            group ``g`` holds samples ``group_starts[g]`` to ``group_starts[g + 1] - 1``.
    """

    root: Path
    files: Sequence[str]
    labels: np.ndarray
    classes: tuple[str, ...]
    class_to_idx: dict[str, int]
    offsets: np.ndarray | None = None
    sizes: np.ndarray | None = None
    keys: Sequence[str] | None = None
    store: object | None = None
    group_starts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def nbytes(self) -> int:
        """Bytes the index holds per process: its arrays and string tables (a store's own arrays too,
        where it says; its cached data not)."""
        total = 0
        for value in (self.files, self.labels, self.offsets, self.sizes, self.keys, self.group_starts):
            if isinstance(value, (np.ndarray, StringTable)):
                total += value.nbytes
            elif value is not None:  # a plain sequence of str
                total += sys.getsizeof(value) + sum(sys.getsizeof(item) for item in set(value))
        return total + getattr(self.store, "index_nbytes", 0)

    def name(self, i: int) -> str:
        """A unique, readable name of sample ``i``: its path, or ``file:key`` inside a tar or Parquet file."""
        key = self.key(i)
        return self.files[i] if key is None else f"{self.files[i]}:{key}"

    def key(self, i: int) -> str | None:
        """Sample ``i``'s key inside its tar shard (``row N`` in a Parquet file), or ``None`` for a whole file."""
        if self.store is not None:
            return self.store.key(i)
        return None if self.keys is None else self.keys[i]

    @property
    def container(self) -> str:
        """What holds samples that have a key, as messages name it: ``tar shard``, ``parquet file``."""
        return self.store.container if self.store is not None else "tar shard"

    def describe(self, i: int) -> str:
        """Sample ``i`` as an error message names it."""
        return describe_sample(self.files[i], self.key(i), self.container)

    def read(self, i: int) -> np.ndarray:
        """The encoded bytes of sample ``i`` (1-D uint8), read with one call.

        Raises:
            OSError: The file cannot be read (``FileNotFoundError`` names it), or a shard is
                shorter than its index says (it changed after indexing).
        """
        if self.store is not None:
            return self.store.read(i)
        if self.offsets is None:
            return np.fromfile(self.files[i], dtype=np.uint8)
        size, offset = int(self.sizes[i]), int(self.offsets[i])
        data = np.empty(size, dtype=np.uint8)
        fd = os.open(self.files[i], os.O_RDONLY)
        try:
            got = os.preadv(fd, [data], offset)
        finally:
            os.close(fd)
        if got != size:
            raise OSError(
                f"could not read {self.describe(i)}: expected {size} bytes at offset {offset}, got {got}; "
                f"the shard is shorter than when it was indexed"
            )
        return data


def describe_sample(path: str, key: str | None = None, container: str = "tar shard") -> str:
    """``image file 'path'``, or ``sample 'key' in tar shard 'path'``: how messages name a sample."""
    return f"image file {path!r}" if key is None else f"sample {key!r} in {container} {path!r}"


def scan_image_folder(root: str | os.PathLike) -> SampleIndex:
    """Lists the images under ``root/<class>/...``.

    Sub-folders of a class folder are searched too, and symbolic links are followed, as
    torchvision does; the order is torchvision's too (folders by path, then files by name). Files whose extension is not in :data:`IMG_EXTENSIONS` are ignored.

    Args:
        root: Folder with one sub-folder per class.

    Returns:
        The index of the samples.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
        ValueError: ``root`` has no class sub-folders, or no images in any of them.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data root {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"data root {str(root)!r} is a file, expected a folder with one sub-folder per class")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise ValueError(
            f"no class folders found in {str(root)!r}: expected the ImageFolder layout root/<class>/<image> "
            f"(e.g. {str(root / 'cat' / 'img001.jpg')!r})"
        )
    prefixes: list[str] = []
    ids: list[int] = []
    names: list[str] = []
    ends: list[int] = []  # where each class's samples end
    for name in classes:
        # torchvision's order: the folders sorted by path, then the files of each sorted by name.
        for folder, images in sorted(_images_under(root / name)):
            if not images:
                continue
            head = folder + os.sep
            images.sort()
            if not prefixes or prefixes[-1] != head:
                prefixes.append(head)
            ids.extend([len(prefixes) - 1] * len(images))
            names.extend(images)
        ends.append(len(names))
    if not names:
        raise ValueError(
            f"no images found under {str(root)!r} in {len(classes)} class folder(s); "
            f"looked for files ending in {', '.join(IMG_EXTENSIONS)} (any case)"
        )
    return SampleIndex(
        root=root,
        files=StringTable._build(prefixes, ids, names),
        labels=np.repeat(np.arange(len(classes), dtype=np.int64), np.diff(ends, prepend=0)),
        classes=tuple(classes),
        class_to_idx={name: idx for idx, name in enumerate(classes)},
    )


def _images_under(folder: Path):
    """``(folder path, image file names)`` of every folder under ``folder`` (links followed)."""
    for dirpath, _dirnames, filenames in os.walk(folder, followlinks=True):
        yield dirpath, [name for name in filenames if name.lower().endswith(IMG_EXTENSIONS)]


def read_file_list(file_list: str | os.PathLike, *, file_root: str | os.PathLike | None = None) -> SampleIndex:
    """Reads a ``path label`` list, one sample per line (DALI's ``file_list`` format).

    Blank lines and lines starting with ``#`` are ignored. The path is everything before the last
    run of whitespace, so paths may contain spaces. Relative paths are taken from ``file_root``
    (default: the list's folder). Labels are integers >= 0; classes are named ``"0"``, ``"1"``, ...

    Raises:
        FileNotFoundError: The list is missing.
        ValueError: A line has no label or a label that is not an integer >= 0 (line number
            given), or the list names no sample.
    """
    file_list = Path(file_list).expanduser()
    if not file_list.is_file():
        raise FileNotFoundError(f"file list {str(file_list)!r} does not exist")
    base = Path(file_root).expanduser() if file_root is not None else file_list.parent
    head = str(base) + os.sep
    files, labels = [], []
    with open(file_list, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, start=1):
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].isdigit():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            raise ValueError(
                f"{str(file_list)!r} line {number}: expected '<path> <label>' with an integer label >= 0, but got {line!r}"
            )
        path = parts[0].lstrip()
        if path.startswith("#"):
            continue
        # As str(base / path), without a Path per line (the slow part at a million lines).
        files.append(path if path.startswith(os.sep) else str(base / path) if _needs_pathlib(path) else head + path)
        labels.append(int(parts[1]))
    if not files:
        raise ValueError(f"file list {str(file_list)!r} names no sample; expected lines of '<path> <label>'")
    return indexed_by_label(root=file_list, files=files, labels=labels)


def _needs_pathlib(path: str) -> bool:
    """Whether ``base / path`` would normalize ``path`` (``.`` parts, doubled or trailing separators)."""
    return path.startswith("." + os.sep) or (os.sep + "." + os.sep) in path or (os.sep * 2) in path or path.endswith(
        (os.sep, os.sep + ".")) or path == "."


def indexed_by_label(*, root, files, labels, **where) -> SampleIndex:
    """A :class:`SampleIndex` whose classes are the integer labels, named ``"0"``, ``"1"``, ..."""
    labels = np.asarray(labels, dtype=np.int64)
    classes = tuple(str(c) for c in range(int(labels.max()) + 1)) if labels.size else ()
    return SampleIndex(
        root=Path(root), files=files if isinstance(files, StringTable) else StringTable.from_strings(files),
        labels=labels, classes=classes,
        class_to_idx={name: c for c, name in enumerate(classes)}, **where,
    )
