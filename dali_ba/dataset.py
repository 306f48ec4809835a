"""Finding the samples: the first stage of the flow, before anything is read or decoded.

``scan_image_folder`` walks a torchvision ``ImageFolder`` layout (one sub-folder per class) and
returns the file list and labels that the loader feeds to DALI. It follows torchvision's rules
(classes are the sorted sub-folder names, files are matched by extension case-insensitively and
sorted), so ``class_to_idx`` is the same as ``torchvision.datasets.ImageFolder`` would give.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Extensions taken as images, matched case-insensitively (torchvision's IMG_EXTENSIONS).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageFolderIndex:
    """The samples of one ``ImageFolder`` tree.

    Attributes:
        root: The folder that was scanned.
        files: Path of every sample, class by class, sorted within a class.
        labels: ``int64`` array, ``labels[i]`` is the class index of ``files[i]``.
        classes: Class names (sub-folder names), sorted.
        class_to_idx: Class name -> class index.
    """

    root: Path
    files: tuple[str, ...]
    labels: np.ndarray
    classes: tuple[str, ...]
    class_to_idx: dict[str, int]

    def __len__(self) -> int:
        return len(self.files)


def scan_image_folder(root: str | os.PathLike) -> ImageFolderIndex:
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
    return ImageFolderIndex(
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
