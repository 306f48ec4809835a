"""Whole image files as a source: an ImageFolder tree or a ``path label`` list, each sample one file.

``scan_image_folder`` walks a torchvision ``ImageFolder`` tree (one sub-folder per class),
following torchvision's rules, so ``class_to_idx`` is what ``torchvision.datasets.ImageFolder``
gives; ``read_file_list`` reads DALI's ``file_list`` format. Both end in a ``SampleIndex`` read
by :class:`FileSource`: each sample one whole local file, one read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import Fetched, Read, ReadPlan
from .index import SampleIndex, StringTable, indexed_by_label, release_freed_memory
from .store import LocalStore

#: Extensions taken as images, matched case-insensitively (torchvision's IMG_EXTENSIONS).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class FileSource:
    """Samples that are whole local files (``base.Source``): each one read whole, one read each.

    Args:
        files: The path of each sample.
        store: The byte store (a ``store.LocalStore`` of its own by default).
    """

    container = None

    def __init__(self, files, store: LocalStore | None = None):
        self.files = files
        self.store = store or LocalStore()

    def read(self, i: int) -> Read:
        return self.store.read_range(self.files[i])

    def read_batch(self, indices) -> Fetched:
        return Fetched.of(self.read(int(i)) for i in indices)

    def key(self, i: int) -> None:
        return None

    def read_plan(self, *, read_threads: int | None, read_ahead: int, batch_size: int) -> ReadPlan:
        return ReadPlan(threads=read_threads or self.store.in_flight, depth=read_ahead)

    def clear(self) -> None:
        """Nothing is kept in memory."""

    @property
    def nbytes(self) -> int:
        return 0  # the paths are the index's ``files``


def scan_image_folder(root: str | os.PathLike) -> SampleIndex:
    """Lists the images under ``root/<class>/...``.

    Sub-folders of a class folder are searched too, and symbolic links are followed, as
    torchvision does; the order is torchvision's too (folders by path, then files by name). Files
    whose extension is not in :data:`IMG_EXTENSIONS` are ignored.

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
    index = SampleIndex(
        root=root,
        files=StringTable._build(prefixes, ids, names),
        labels=np.repeat(np.arange(len(classes), dtype=np.int64), np.diff(ends, prepend=0)),
        classes=tuple(classes),
        class_to_idx={name: idx for idx, name in enumerate(classes)},
    )
    del prefixes, ids, names
    release_freed_memory()
    return index


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
    index = indexed_by_label(root=file_list, files=files, labels=labels)
    del files, labels, lines
    release_freed_memory()
    return index


def _needs_pathlib(path: str) -> bool:
    """Whether ``base / path`` would normalize ``path`` (``.`` parts, doubled or trailing separators)."""
    return path.startswith("." + os.sep) or (os.sep + "." + os.sep) in path or (os.sep * 2) in path or path.endswith(
        (os.sep, os.sep + ".")) or path == "."


