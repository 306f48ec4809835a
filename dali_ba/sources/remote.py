"""The byte store for URLs (S3, GCS, the Hugging Face Hub, HTTP): ranges in, bytes out, through ``fsspec``.

The remote half of ``store.py``: a URL goes through ``fsspec``, the interface every object
store's Python client implements (s3fs, gcsfs, huggingface_hub, HTTP through aiohttp), with
``storage_options`` passed to it as pandas and ``datasets`` do. Here live what a remote read
needs and a local one does not:
a window of requests in flight (a batch's ranges go out together on fsspec's event loop, so a
batch waits about one round trip), a time limit per request, bounded retries with backoff and
jitter on what is worth retrying (5xx, 429, reset connections, bodies cut short, time-outs),
errors that name the URL and the range and no credential, and counters of requests and bytes.
:class:`RangeFile` lends a file's interface to readers that want one (pyarrow's Parquet reader).
"""

from __future__ import annotations

import asyncio
import functools
import glob
import io
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .base import Fetched, Read
from .store import RequestStats, StorageError, redact

#: Seconds one request may take before it is abandoned (and retried).
REQUEST_TIMEOUT_S = 60.0
#: Requests a store keeps in flight: Little's law, images/s x seconds per request (2500 x 50 ms).
IN_FLIGHT = 128
#: Objects indexed at once behind URLs, each waiting on round trips: at ImageNet's 1282 shards
#: and 20 ms a request, 32 rather than 8 cut a cached index's start from 3.9 to 2.1 s; 64 did no
#: better (benchmarks/README.md, start-up over a URL).
INDEX_THREADS = 32
#: Tries of one request, the first included.
ATTEMPTS = 6
#: First back-off, doubled at each retry, with up to as much again of random jitter.
BACKOFF_S = 0.1
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class _ShortRead(Exception):
    """A body that ended before its range did (a dropped connection): worth reading again."""


class RemoteStore:
    """Ranged reads of URLs through one ``fsspec`` filesystem, with time limits and retries.

    Args:
        url: Any URL of the store (its scheme and options pick the filesystem).
        storage_options: Passed to the filesystem (credentials, endpoint, ...), never printed.
        timeout: Seconds per request.
        attempts: Tries per request.
        in_flight: Requests :meth:`read_many` keeps in flight, all its calls together (the
            store is ``batched``: a batch's ranges go out together). The
            connection pools of HTTP (aiohttp: 100) and S3 (aiobotocore: 10) are sized to it,
            unless ``storage_options`` size them.

    Raises:
        ImportError: The scheme's fsspec implementation is not installed (the message says which
            extra to install).
    """

    def __init__(self, url: str, storage_options: dict | None = None, *, timeout: float = REQUEST_TIMEOUT_S,
                 attempts: int = ATTEMPTS, in_flight: int = IN_FLIGHT):
        try:
            import fsspec
        except ImportError:
            raise ImportError("reading URLs needs fsspec: pip install 'dali-ba[remote]'") from None
        try:
            self.fs, _ = fsspec.core.url_to_fs(url, **_pooled(url, storage_options or {}, in_flight))
        except ImportError as err:
            raise ImportError(f"no fsspec filesystem for {redact(url).split('://')[0]}:// URLs ({err}); install its "
                              f"client (s3fs, gcsfs, huggingface_hub, aiohttp) or pip install 'dali-ba[remote]'") from None
        self.timeout, self.attempts, self.in_flight = timeout, attempts, in_flight
        self._slots = None  # the in-flight semaphore, made on fsspec's event loop
        self.stats = RequestStats()
        self._lock = threading.Lock()

    remote = True
    #: A batch's ranges are read together (:meth:`read_ranges`), not one per reader thread.
    batched = True

    def read_range(self, url: str, offset: int | None = None, size: int | None = None) -> Read:
        """As :meth:`read`, as the ``store.Store`` interface gives it: an array, with the requests it took."""
        made = [0]
        data = self._read(url, offset, size, made)
        return Read(np.frombuffer(data, dtype=np.uint8), made[0], len(data))

    def read_ranges(self, ranges: list[tuple[str, int, int]]) -> Fetched:
        """As :meth:`read_many`, as the ``store.Store`` interface gives it: arrays, with their requests and bytes."""
        fetched = self.read_many(ranges)
        return Fetched([np.frombuffer(data, dtype=np.uint8) for data in fetched], fetched.requests,
                       sum(len(data) for data in fetched))

    def read(self, url: str, offset: int | None = None, size: int | None = None) -> bytes:
        """Bytes ``offset .. offset + size - 1`` of ``url`` (the whole object without them).

        Raises:
            StorageError: Not found or forbidden (at once), a range the server did not honour,
                or a failure that lasted through every retry; the URL and range are named.
        """
        return self._read(url, offset, size, [0])

    def _read(self, url: str, offset: int | None, size: int | None, made: list[int]) -> bytes:
        where = _where(url, offset, size)
        return self._call(url, lambda: self._checked(self._cat(url, offset, size), where, size), where, made)

    def read_many(self, ranges: list[tuple[str, int, int]]) -> "Fetched":
        """The bytes of many ``(url, offset, size)`` ranges, in order, as a :class:`Fetched` list
        that also says how many requests they took.

        On an asynchronous filesystem (HTTP, S3, GCS) the requests run on fsspec's event loop, at
        most ``in_flight`` at a time over every call of this store (calls from several threads
        share the window), so a batch waits about one round trip and no thread per request is
        needed; others (the Hugging Face Hub's) are read on ``in_flight`` threads per call. Each
        range has its own time limit and retries, as in :meth:`read`; the first range that fails
        for good cancels the rest and is raised.

        Raises:
            StorageError: As :meth:`read`, naming the range that failed.
        """
        if not ranges:
            return Fetched()
        if not getattr(self.fs, "async_impl", False):
            with ThreadPoolExecutor(max(1, min(self.in_flight, len(ranges))), thread_name_prefix="dali-ba-storage") as pool:
                made = [[0] for _ in ranges]  # one counter per range: the threads never share one
                fetched = list(pool.map(lambda r, m: self._read(*r, m), ranges, made))
            return Fetched(fetched, requests=sum(m[0] for m in made))
        from fsspec.asyn import sync

        made = [0]  # counted on the event loop's one thread
        fetched = sync(self.fs.loop, self._read_all, ranges, made)
        return Fetched(fetched, requests=made[0])

    async def _read_all(self, ranges, made: list[int]) -> list[bytes]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.in_flight)
        slots = self._slots

        async def one(url: str, offset: int, size: int) -> bytes:
            where = _where(url, offset, size)
            delay = BACKOFF_S
            async with slots:
                for attempt in range(1, self.attempts + 1):
                    self._count(requests=1)
                    made[0] += 1
                    try:
                        data = await asyncio.wait_for(self.fs._cat_file(url, start=offset, end=offset + size), self.timeout)
                        return self._checked(data, where, size)
                    except Exception as err:  # noqa: BLE001 (sorted by _give_up)
                        self._give_up(err, url, where, attempt)
                    await asyncio.sleep(delay + random.uniform(0, delay))
                    delay *= 2
            raise AssertionError("unreachable")

        tasks = [asyncio.ensure_future(one(*r)) for r in ranges]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()  # a no-op on the ones done; the rest after a failure (or a cancel of ours)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # the first failure in range order
        return [task.result() for task in tasks]

    def info(self, url: str) -> dict:
        """The object's size and version tag (``ETag`` or mtime, where the store gives one).

        Raises:
            StorageError: As :meth:`read`; ``FileNotFoundError``-like 404 included.
        """
        info = self._call(url, lambda: self.fs.info(url))
        # What each store calls the version of an object: S3 and GCS an ETag (GCS a generation too),
        # the Hugging Face Hub a blob id, HTTP servers an ETag or Last-Modified, file systems an mtime.
        version = next((info[k] for k in ("ETag", "etag", "generation", "blob_id", "LastModified", "mtime", "created")
                        if info.get(k)), "")
        return {"size": int(info.get("size") or 0), "version": str(version).strip('"')}

    def expand(self, urls: list[str], *, what: str) -> list[str]:
        """``urls`` with each glob (``train-*.parquet``) replaced by the URLs it matches, sorted (one listing each).

        Raises:
            FileNotFoundError: A glob matches nothing (it is named).
            StorageError: A listing failed, as :meth:`read`.
        """
        expanded = []
        for url in urls:
            if not glob.has_magic(url.split("://", 1)[1]):
                expanded.append(url)
                continue
            found = sorted(self._call(url, lambda url=url: self.fs.glob(url)))
            if not found:
                raise FileNotFoundError(f"{what} pattern {redact(url)!r} matches no object")
            expanded += [path if "://" in path else self.fs.unstrip_protocol(path) for path in found]
        return expanded

    def download(self, url: str, path) -> None:
        """Copies the whole object ``url`` to the local file ``path``, streamed (one request,
        retried as reads are; a retry starts the file again).

        Raises:
            StorageError: As :meth:`read`.
        """
        def copy():
            self.fs.get_file(url, os.fspath(path))
            self._count(bytes=os.path.getsize(path))

        self._call(url, copy)

    def write(self, url: str, data: bytes) -> None:
        """Writes ``data`` as the whole object ``url`` (one request, retried as reads are).

        Raises:
            StorageError: The store refuses (403, or 405 from an HTTP server that takes no
                uploads), cannot write at all, or kept failing; the URL is named.
        """
        self._call(url, lambda: self.fs.pipe_file(url, data), doing="write")

    def exists(self, url: str) -> bool:
        """Whether ``url`` exists: a 404 says no; other failures are retried, then raised."""
        try:
            self.info(url)
        except StorageError as err:
            if err.status == 404:
                return False
            raise
        return True

    def _call(self, url: str, call, where: str | None = None, made: list[int] | None = None, *, doing: str = "read"):
        """``call()``, one request about ``url``, tried up to ``attempts`` times with backoff and
        jitter where the failure is worth another try; ``made[0]`` counts the tries, ``where``
        (default: the URL) is what errors name, ``doing`` what they say was tried."""
        delay = BACKOFF_S
        for attempt in range(1, self.attempts + 1):
            self._count(requests=1)
            if made is not None:
                made[0] += 1
            try:
                return call()
            except Exception as err:  # noqa: BLE001 (sorted by _give_up: worth retrying or not)
                self._give_up(err, url, where or redact(url), attempt, doing)
            time.sleep(delay + random.uniform(0, delay))
            delay *= 2
        raise AssertionError("unreachable")

    def _give_up(self, err: Exception, url: str, where: str, attempt: int, doing: str = "read") -> None:
        """Raises ``StorageError`` where ``err`` is not worth another try (or no try is left);
        otherwise counts the retry and returns."""
        if isinstance(err, StorageError):
            raise err
        if isinstance(err, NotImplementedError):
            raise StorageError(f"could not {doing} {where}: its store cannot ({redact(_describe(err))})") from None
        if isinstance(err, FileNotFoundError):
            if err.__cause__ is None or _status(err.__cause__) in (404, 410):
                raise StorageError(f"{redact(url)} does not exist (404)", status=404) from None
            err = err.__cause__  # fsspec's HTTP info says "not found" for every failure (a 503 too): judge the cause
        status = _status(err)
        if status in (401, 403) or isinstance(err, PermissionError):
            raise StorageError(f"{redact(url)}: access denied ({status or 'forbidden'}); check the credentials "
                               f"of storage_options or the environment", status=status or 403) from None
        if status is not None and status not in _RETRY_STATUS:
            raise StorageError(f"could not {doing} {where}: HTTP {status}", status=status) from None
        if attempt == self.attempts:
            raise StorageError(f"could not {doing} {where} after {attempt} tries: {redact(_describe(err))}",
                               status=status) from None
        self._count(retries=1)

    def _checked(self, data: bytes, where: str, size: int | None) -> bytes:
        """``data`` if it is the whole range (counted), else an error: a retry for a short body."""
        if size is not None and len(data) != size:
            if len(data) > size:  # more than asked: the server ignored the range
                raise StorageError(f"could not read {where}: got {len(data)} bytes, expected {size}; the server does "
                                   f"not honour range requests")
            raise _ShortRead(f"got {len(data)} of {size} bytes")  # a body cut short: read it again
        self._count(bytes=len(data))
        return data

    def _cat(self, url: str, offset, size) -> bytes:
        fs = self.fs
        end = None if offset is None else offset + size
        if getattr(fs, "async_impl", False):  # one event loop for every thread; the time limit there
            from fsspec.asyn import sync

            return sync(fs.loop, fs._cat_file, url, start=offset, end=end, timeout=self.timeout)
        return fs.cat_file(url, start=offset, end=end)

    def _count(self, requests: int = 0, bytes: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.stats.requests += requests
            self.stats.bytes += bytes
            self.stats.retries += retries


class RangeFile(io.RawIOBase):
    """A read-only file over one URL for readers that want a file (pyarrow's Parquet reader): each
    read is served from the ranges given up front (``known``, offset -> bytes) where it falls in
    one, else with one ranged request through ``remote``. Not thread-safe; one per reader.

    Args:
        remote: The store.
        url: The object.
        size: Its size in bytes.
        known: Byte ranges already fetched, as ``{offset: bytes}``.
    """

    def __init__(self, remote: RemoteStore, url: str, size: int, known: dict[int, bytes] | None = None):
        super().__init__()
        self.remote, self.url, self._size = remote, url, size
        self._known = sorted((known or {}).items())
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def size(self) -> int:
        return self._size

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self._size - self._position))
        if count:
            buffer[:count] = self._range(self._position, count)
            self._position += count
        return count

    def _range(self, offset: int, count: int) -> bytes:
        for start, data in self._known:
            if start <= offset and offset + count <= start + len(data):
                return data[offset - start : offset - start + count]
        return self.remote.read(self.url, offset, count)


def _pooled(url: str, storage_options: dict, in_flight: int) -> dict:
    """``storage_options`` with the connection pool of HTTP and S3 sized to ``in_flight``, where
    they do not size it themselves (else requests past the pool's size would queue there)."""
    protocol = url.split("://", 1)[0]
    options = dict(storage_options)
    if protocol in ("http", "https") and "get_client" not in options:
        options["get_client"] = functools.partial(_http_client, limit=in_flight)
    elif protocol in ("s3", "s3a"):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("max_pool_connections", in_flight)
        options["config_kwargs"] = config
    return options


async def _http_client(limit: int, **kwargs):
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit), **kwargs)


def _status(err: BaseException) -> int | None:
    """The HTTP status an fsspec client's error carries (aiohttp's ``status``, botocore's response), if any."""
    return getattr(err, "status", None) or getattr(getattr(err, "response", None), "status_code", None)


def _where(url: str, offset: int | None, size: int | None) -> str:
    return redact(url) + (f" bytes {offset}-{offset + size - 1}" if offset is not None else "")


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__
