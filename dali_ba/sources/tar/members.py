"""WebDataset's rules for the members of a tar shard, and one tar file's index (:class:`TarIndex`).

A sample is the group of members of one tar file that share a key (the member name up to the
first ``.`` of its base name); its image is the member with an image extension (``jpg``,
``jpeg``, ``png``, ``webp``, ... :data:`TAR_IMAGE_EXTENSIONS`), its label the ``cls`` member, an
integer in text. Other members (``json``, ``txt``, ...) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..files import IMG_EXTENSIONS

#: Member extensions taken as the sample's image, in order of preference when a sample has several.
TAR_IMAGE_EXTENSIONS = tuple(ext.lstrip(".") for ext in IMG_EXTENSIONS)
LABEL_EXTENSION = "cls"
#: Preference among a sample's image members (the first found in this order is its image).
IMAGE_RANK = {ext: rank for rank, ext in enumerate(TAR_IMAGE_EXTENSIONS)}


@dataclass(frozen=True)
class TarIndex:
    """One tar file's samples: keys (UTF-8 ``key_blob`` cut at ``key_ends``), image offsets and sizes, labels."""

    key_blob: bytes
    key_ends: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray

    @classmethod
    def from_keys(cls, keys: list[str], offsets, sizes, labels) -> "TarIndex":
        joined = "".join(keys)
        blob = joined.encode("utf-8", "surrogateescape")
        if len(blob) == len(joined):  # ASCII: a character is a byte
            lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
        else:
            lengths = np.fromiter((len(key.encode("utf-8", "surrogateescape")) for key in keys), dtype=np.int64,
                                  count=len(keys))
        return cls(blob, np.cumsum(lengths).astype(np.uint32), np.asarray(offsets, dtype=np.int64),
                   np.asarray(sizes, dtype=np.int64), np.asarray(labels, dtype=np.int64))

    @property
    def keys(self) -> list[str]:
        starts = np.concatenate([[0], self.key_ends[:-1]]).astype(np.int64)
        return [self.key_blob[a:b].decode("utf-8", "surrogateescape") for a, b in zip(starts, self.key_ends.astype(np.int64))]

    def __len__(self) -> int:
        return len(self.offsets)


def group_samples(path: str, members) -> TarIndex:
    """Groups ``(name, offset, size, label_bytes)`` members into samples (WebDataset's rules).

    A member's key is its name up to the first ``.`` of its base name, its extension the rest
    (names without one, or hidden, belong to no sample), as WebDataset's ``base_plus_ext``.

    Raises:
        ValueError: A sample without an image, without a label, or with a label that is not an
            integer >= 0; the message names the tar file and the key.
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
            entry = found[key] = [0, 0, len(IMAGE_RANK), None, ()]
        if extension == LABEL_EXTENSION:
            entry[3] = data
            continue
        rank = IMAGE_RANK.get(extension)
        if rank is not None and rank < entry[2]:
            entry[0], entry[1], entry[2] = offset, size, rank
        elif rank is None:
            entry[4] += (extension,)
    keys, offsets, sizes, values = [], [], [], []
    for key, (offset, size, rank, label, others) in found.items():
        if rank == len(IMAGE_RANK):
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
    return TarIndex.from_keys(keys, offsets, sizes, values)
