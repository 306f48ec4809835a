"""Writing tar shards: an ImageFolder or file list as WebDataset tar files, each with its sidecars."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np

from ..index import SampleIndex
from .members import LABEL_EXTENSION
from .sidecars import sidecar_path, write_sidecar


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
    if index.container is not None:
        raise ValueError("make_shards takes whole files (an ImageFolder or a file list), not samples that are already in tars "
                         "or Parquet files")
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
