"""Reading the samples of tar shards: each image one byte range of its tar file, local or behind a URL."""

from __future__ import annotations

import numpy as np

from ..base import Fetched, Read, ReadPlan, describe_sample
from ..store import Store, StorageError


class TarSource:
    """The images of tar shards (``base.Source``): sample ``i`` is ``sizes[i]`` bytes at
    ``offsets[i]`` of ``files[i]``, read through ``store`` (one ``pread``, or one ranged request).

    Args:
        files: Each sample's tar file (path or URL).
        offsets, sizes: Where each sample's image lies in it.
        keys: Each sample's WebDataset key (``__key__``).
        store: ``store.LocalStore`` or ``remote.RemoteStore``.
    """

    container = "tar shard"

    def __init__(self, files, offsets: np.ndarray, sizes: np.ndarray, keys, store: Store):
        self.files, self.offsets, self.sizes, self.keys, self.store = files, offsets, sizes, keys, store

    def read(self, i: int) -> Read:
        try:
            return self.store.read_range(self.files[i], int(self.offsets[i]), int(self.sizes[i]))
        except (StorageError, FileNotFoundError):
            raise  # they name the file already
        except OSError as err:
            raise OSError(f"could not read {describe_sample(self.files[i], self.keys[i])}: {err}") from err

    def read_batch(self, indices) -> Fetched:
        """The batch's ranges together (``store.read_ranges``: behind URLs, its requests in flight at once)."""
        return self.store.read_ranges([(self.files[i], int(self.offsets[i]), int(self.sizes[i])) for i in map(int, indices)])

    def key(self, i: int) -> str:
        return self.keys[i]

    def read_plan(self, *, read_threads: int | None, read_ahead: int, batch_size: int) -> ReadPlan:
        """Local files: ``read_threads`` threads (16), a sample each. Behind URLs a batch is one call
        (its requests in flight together on the store's event loop), and enough batches are read
        ahead to keep the store's window of requests (``read_threads`` set it at indexing) full."""
        if self.store.batched:
            depth = max(read_ahead, -(-self.store.in_flight // batch_size) + 1)
            return ReadPlan(threads=depth, depth=depth, batched=True)
        return ReadPlan(threads=read_threads or self.store.in_flight, depth=read_ahead)

    def clear(self) -> None:
        """Nothing is kept in memory."""

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.sizes.nbytes + self.keys.nbytes  # the files are the index's
