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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Extensions taken as images, matched case-insensitively (torchvision's IMG_EXTENSIONS).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class SampleIndex:
    """The samples of one data set, wherever they are stored.

    Attributes:
        root: What was indexed (a folder, a file list, the first tar shard); used in messages.
        files: The file that holds each sample's encoded image.
        labels: ``int64`` array, ``labels[i]`` is the class index of sample ``i``.
        classes: Class names, in label order.
        class_to_idx: Class name -> class index.
        offsets: ``int64`` byte offset of each image inside its file, or ``None`` when every
            sample is a whole file.
        sizes: ``int64`` byte size of each image (with ``offsets``), else ``None``.
        keys: Each sample's key inside its tar shard (WebDataset's ``__key__``), else ``None``.
        store: Where the bytes come from when a sample is not a byte range of a file (Parquet
            rows): an object with ``read(i)``, ``key(i)`` and ``container`` (how messages name
            the file); ``None`` for files and tar shards.
        group_starts: With a ``store`` that reads in groups (Parquet row groups): ``int64``,
            group ``g`` holds samples ``group_starts[g]`` to ``group_starts[g + 1] - 1``.
    """

    root: Path
    files: tuple[str, ...]
    labels: np.ndarray
    classes: tuple[str, ...]
    class_to_idx: dict[str, int]
    offsets: np.ndarray | None = None
    sizes: np.ndarray | None = None
    keys: tuple[str, ...] | None = None
    store: object | None = None
    group_starts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.files)

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
    torchvision does. Files whose extension is not in :data:`IMG_EXTENSIONS` are ignored.

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
    files: list[str] = []
    labels: list[int] = []
    for class_idx, name in enumerate(classes):
        found = sorted(_images_under(root / name))
        files.extend(found)
        labels.extend([class_idx] * len(found))
    if not files:
        raise ValueError(
            f"no images found under {str(root)!r} in {len(classes)} class folder(s); "
            f"looked for files ending in {', '.join(IMG_EXTENSIONS)} (any case)"
        )
    return SampleIndex(
        root=root,
        files=tuple(files),
        labels=np.asarray(labels, dtype=np.int64),
        classes=tuple(classes),
        class_to_idx={name: idx for idx, name in enumerate(classes)},
    )


def _images_under(folder: Path):
    for dirpath, _dirnames, filenames in os.walk(folder, followlinks=True):
        for filename in filenames:
            if filename.lower().endswith(IMG_EXTENSIONS):
                yield os.path.join(dirpath, filename)


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
    files, labels = [], []
    with open(file_list, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(
                    f"{str(file_list)!r} line {number}: expected '<path> <label>' with an integer label >= 0, but got {line!r}"
                )
            files.append(str(base / parts[0]))
            labels.append(int(parts[1]))
    if not files:
        raise ValueError(f"file list {str(file_list)!r} names no sample; expected lines of '<path> <label>'")
    return indexed_by_label(root=file_list, files=files, labels=labels)


def indexed_by_label(*, root, files, labels, **where) -> SampleIndex:
    """A :class:`SampleIndex` whose classes are the integer labels, named ``"0"``, ``"1"``, ..."""
    labels = np.asarray(labels, dtype=np.int64)
    classes = tuple(str(c) for c in range(int(labels.max()) + 1)) if labels.size else ()
    return SampleIndex(
        root=Path(root), files=tuple(files), labels=labels, classes=classes,
        class_to_idx={name: c for c, name in enumerate(classes)}, **where,
    )
