"""Byte stores: where a source's bytes come from, local files or URLs (house style 13).

A source says which byte ranges it needs (a whole file, a tar member, a Parquet column chunk); a
store turns them into bytes and counts what that took. :class:`LocalStore` reads local files with
one positioned read each (``pread`` releases the interpreter lock, so reader threads overlap).
``remote.RemoteStore`` reads URLs through ``fsspec`` (S3, GCS, the Hugging Face Hub, HTTP), with
a window of requests in flight, time limits and retries. :func:`store_for` picks one for a list
of paths. "Store" means only this transport; what reads samples is a source (``base.Source``).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .base import Fetched, Read

#: Reader threads for local files: enough to keep a disk's queue busy while DALI decodes.
LOCAL_READ_THREADS = 16
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def is_url(path) -> bool:
    """Whether ``path`` names a remote object (``scheme://...``, ``file://`` excluded)."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` part of any URL in it removed."""
    return _CREDENTIALS.sub("", text)


class StorageError(OSError):
    """A remote read failed for good: after its retries, or at once for 403/404. Names the URL;
    ``status`` is the HTTP status where there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class RequestStats:
    """Requests and bytes a store has made and received (retries counted as requests)."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0


class Store(Protocol):
    """Turns byte ranges into bytes. Implemented by :class:`LocalStore` and ``remote.RemoteStore``.

    Attributes:
        remote: Whether the bytes come over a network (each read waits a round trip).
        batched: Whether :meth:`read_ranges` sends a batch's requests together (an event loop
            with a window of requests in flight); else the reader spreads single reads over threads.
        in_flight: Reads to keep in flight by default.
        stats: Everything this store has read so far (indexing included).
    """

    remote: bool
    batched: bool
    in_flight: int
    stats: RequestStats

    def read_range(self, path: str, offset: int | None = None, size: int | None = None) -> Read:
        """Bytes ``offset .. offset + size - 1`` of ``path`` (the whole file without them).

        Raises:
            OSError: It cannot be read, or holds fewer bytes than asked; the message names it.
        """
        ...

    def read_ranges(self, ranges: list[tuple[str, int, int]]) -> Fetched:
        """The bytes of many ``(path, offset, size)`` ranges, in order."""
        ...


class LocalStore:
    """Local files, one positioned read per range (no file handle outlives a read)."""

    remote = False
    batched = False
    in_flight = LOCAL_READ_THREADS

    def __init__(self):
        self.stats = RequestStats()
        self._lock = threading.Lock()

    def read_range(self, path: str, offset: int | None = None, size: int | None = None) -> Read:
        if offset is None:
            data = np.fromfile(path, dtype=np.uint8)
        else:
            data = np.empty(size, dtype=np.uint8)
            fd = os.open(path, os.O_RDONLY)
            try:
                got = os.preadv(fd, [data], offset)
            finally:
                os.close(fd)
            if got != size:
                raise OSError(f"expected {size} bytes at offset {offset} of {path!r}, got {got}; the file is shorter "
                              f"than when it was indexed")
        with self._lock:
            self.stats.requests += 1
            self.stats.bytes += data.nbytes
        return Read(data, 1, data.nbytes)

    def read_ranges(self, ranges: list[tuple[str, int, int]]) -> Fetched:
        return Fetched.of(self.read_range(*r) for r in ranges)


def store_for(paths: list[str], storage_options: dict | None, *, what: str, in_flight: int | None = None) -> Store:
    """The store that ``paths`` (``what``: how messages name them) are read through: a
    :class:`LocalStore` for local paths, else one ``remote.RemoteStore`` for all of them
    (``in_flight``: its requests in flight, ``None`` for ``remote.IN_FLIGHT``).

    Raises:
        ValueError, ImportError: As :func:`remote_store`.
    """
    return remote_store(paths, storage_options, what=what, in_flight=in_flight) or LocalStore()


def remote_store(paths: list[str], storage_options: dict | None, *, what: str, in_flight: int | None = None):
    """The ``remote.RemoteStore`` that the URLs ``paths`` are read through, or ``None`` for local paths.

    Raises:
        ValueError: ``storage_options`` for local paths, or local paths and URLs (or URLs of
            several stores) mixed.
        ImportError: URLs without fsspec (the message says which extra to install).
    """
    urls = [is_url(path) for path in paths]
    if not any(urls):
        if storage_options:
            raise ValueError(f"storage_options are for URLs (s3://, gs://, hf://, https://...), but the {what} are local paths")
        return None
    if not all(urls) or len({path.split("://", 1)[0] for path in paths}) > 1:
        raise ValueError(f"the {what} mix local paths and URLs, or URLs of several stores; give the {what} of one store")
    from .remote import IN_FLIGHT, RemoteStore

    return RemoteStore(paths[0], storage_options, in_flight=in_flight or IN_FLIGHT)
