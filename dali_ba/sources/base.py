"""What every source gives the stages after it: the :class:`Source` interface and what it returns.

A source knows where each sample's encoded image lies (a whole file, a byte range of a tar shard,
a row of a Parquet row group) and reads it through a byte store (``store.py``: local files, or
URLs through ``remote.py``). The reader (``reader.py``), the feed (``feed.py``) and the bench ask
a source for nothing beyond this interface; every source implements all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np


class Read(NamedTuple):
    """One sample's encoded bytes and what storage did to give them.

    Attributes:
        data: The encoded image, 1-D ``uint8`` (empty where a Parquet row has none).
        requests: Requests this read sent to storage: 1 for a file or a tar member, 0 for a row
            whose row group was read already, retries included behind URLs.
        nbytes: Bytes this read took from storage (a whole row group's image column, for the read
            that fetched it).
    """

    data: np.ndarray
    requests: int
    nbytes: int


class Fetched(list):
    """The encoded images of one batch, in order (1-D ``uint8`` arrays), with what storage did for them.

    Attributes:
        requests: Requests sent to storage for this batch, retries included.
        nbytes: Bytes taken from storage for this batch.
    """

    def __init__(self, items=(), requests: int = 0, nbytes: int = 0):
        super().__init__(items)
        self.requests = requests
        self.nbytes = nbytes

    @classmethod
    def of(cls, reads) -> "Fetched":
        """The batch of :class:`Read` results ``reads``, in order."""
        reads = list(reads)
        return cls([r.data for r in reads], sum(r.requests for r in reads), sum(r.nbytes for r in reads))


@dataclass(frozen=True)
class ReadPlan:
    """How the reader keeps a source busy.

    Attributes:
        threads: Reader threads. Where ``batched``, one batch per thread (a whole batch is one
            :meth:`Source.read_batch` call); else one sample per thread (:meth:`Source.read`).
        depth: Batches read ahead of the one the pipeline takes next.
        batched: Read a batch with one ``read_batch`` call (its requests in flight together).
    """

    threads: int
    depth: int
    batched: bool = False


@runtime_checkable
class Source(Protocol):
    """Reads the samples of one :class:`~dali_ba.sources.index.SampleIndex` (sample ``i`` is row ``i``).

    Implemented by :class:`~dali_ba.sources.files.FileSource` (whole files),
    :class:`~dali_ba.sources.tar.source.TarSource` (tar members, local or behind URLs) and
    :class:`~dali_ba.sources.parquet.source.ParquetSource` (Parquet rows, local or behind URLs).
    All methods are thread-safe.

    Attributes:
        container: What holds keyed samples, as messages name it (``"tar shard"``, ``"parquet
            file"``); ``None`` where every sample is a whole file.
        nbytes: Bytes of the per-sample arrays this source holds (its share of the index).
    """

    container: str | None

    def read(self, i: int) -> Read:
        """Sample ``i``'s encoded bytes and their cost.

        Raises:
            OSError: It cannot be read; the message names the file (and key or row).
        """
        ...

    def read_batch(self, indices: np.ndarray) -> Fetched:
        """The samples ``indices`` together (a batch's requests in flight at once, where that helps)."""
        ...

    def key(self, i: int) -> str | None:
        """Sample ``i``'s key inside its container (a tar key, ``row N``), ``None`` for a whole file."""
        ...

    def read_plan(self, *, read_threads: int | None, read_ahead: int, batch_size: int) -> ReadPlan:
        """How many reads to keep in flight: ``read_threads`` and ``read_ahead`` as the user set them."""
        ...

    def clear(self) -> None:
        """Forgets what is cached in memory (row groups), so that the next reads come from storage."""
        ...

    @property
    def nbytes(self) -> int:
        ...


def describe_sample(path: str, key: str | None = None, container: str | None = "tar shard") -> str:
    """``image file 'path'``, or ``sample 'key' in tar shard 'path'``: how messages name a sample."""
    return f"image file {path!r}" if key is None else f"sample {key!r} in {container or 'file'} {path!r}"
