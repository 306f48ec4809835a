"""Where bytes come from: byte ranges of local files or of URLs (S3, GCS, the Hugging Face Hub, HTTP).

The one storage layer of the flow (house style 13): sources say which byte ranges they need, and
this module turns ranges into bytes. Local paths are read by the sources themselves, as before
(one ``pread``); a URL goes through ``fsspec``, the interface every object store's Python client
implements (s3fs, gcsfs, huggingface_hub, HTTP through aiohttp), with ``storage_options`` passed
to it as pandas and ``datasets`` do. Here live what a remote read needs and a local one does not:
a time limit per request, bounded retries with backoff and jitter on what is worth retrying
(5xx, 429, reset connections, time-outs), errors that name the URL and the range and no
credential, and counters of requests and bytes.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass

#: Seconds one request may take before it is abandoned (and retried).
REQUEST_TIMEOUT_S = 60.0
#: Tries of one request, the first included.
ATTEMPTS = 6
#: First back-off, doubled at each retry, with up to as much again of random jitter.
BACKOFF_S = 0.1
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
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


class _ShortRead(Exception):
    """A body that ended before its range did (a dropped connection): worth reading again."""


@dataclass
class RequestStats:
    """Requests and bytes a :class:`RemoteStore` has made and received (retries counted as requests)."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0


class RemoteStore:
    """Ranged reads of URLs through one ``fsspec`` filesystem, with time limits and retries.

    Args:
        url: Any URL of the store (its scheme and options pick the filesystem).
        storage_options: Passed to the filesystem (credentials, endpoint, ...), never printed.
        timeout: Seconds per request.
        attempts: Tries per request.

    Raises:
        ImportError: The scheme's fsspec implementation is not installed (the message says which
            extra to install).
    """

    def __init__(self, url: str, storage_options: dict | None = None, *, timeout: float = REQUEST_TIMEOUT_S,
                 attempts: int = ATTEMPTS):
        try:
            import fsspec
        except ImportError:
            raise ImportError("reading URLs needs fsspec: pip install 'dali-ba[remote]'") from None
        try:
            self.fs, _ = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except ImportError as err:
            raise ImportError(f"no fsspec filesystem for {redact(url).split('://')[0]}:// URLs ({err}); install its "
                              f"client (s3fs, gcsfs, huggingface_hub, aiohttp) or pip install 'dali-ba[remote]'") from None
        self.timeout, self.attempts = timeout, attempts
        self.stats = RequestStats()
        self._lock = threading.Lock()

    def read(self, url: str, offset: int | None = None, size: int | None = None) -> bytes:
        """Bytes ``offset .. offset + size - 1`` of ``url`` (the whole object without them).

        Raises:
            StorageError: Not found or forbidden (at once), a range the server did not honour,
                or a failure that lasted through every retry; the URL and range are named.
        """
        end = None if offset is None else offset + size
        where = redact(url) + (f" bytes {offset}-{end - 1}" if offset is not None else "")

        def attempt():
            data = self._cat(url, offset, end)
            if size is not None and len(data) != size:
                if len(data) > size:  # more than asked: the server ignored the range
                    raise StorageError(f"could not read {where}: got {len(data)} bytes, expected {size}; the server does "
                                       f"not honour range requests")
                raise _ShortRead(f"got {len(data)} of {size} bytes")  # a body cut short: read it again
            return data

        data = self._retrying(where, url, attempt)
        self._count(bytes=len(data))
        return data

    def info(self, url: str) -> dict:
        """The object's size and version tag (``ETag`` or mtime, where the store gives one).

        Raises:
            StorageError: As :meth:`read`; ``FileNotFoundError``-like 404 included.
        """
        info = self._retrying(redact(url), url, lambda: self.fs.info(url))
        version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or ""
        return {"size": int(info.get("size") or 0), "version": str(version).strip('"')}

    def exists(self, url: str) -> bool:
        """Whether ``url`` exists: a 404 says no; other failures are retried, then raised."""
        try:
            self.info(url)
        except StorageError as err:
            if err.status == 404:
                return False
            raise
        return True

    def _retrying(self, where: str, url: str, call):
        delay = BACKOFF_S
        for attempt in range(1, self.attempts + 1):
            self._count(requests=1)
            try:
                return call()
            except StorageError:
                raise
            except FileNotFoundError:
                raise StorageError(f"{redact(url)} does not exist (404)", status=404) from None
            except Exception as err:  # noqa: BLE001 (sorted below: worth retrying or not)
                status = getattr(err, "status", None) or getattr(getattr(err, "response", None), "status_code", None)
                if status in (401, 403) or isinstance(err, PermissionError):
                    raise StorageError(f"{redact(url)}: access denied ({status or 'forbidden'}); check the credentials "
                                       f"of storage_options or the environment", status=status or 403) from None
                if status is not None and status not in _RETRY_STATUS:
                    raise StorageError(f"could not read {where}: HTTP {status}", status=status) from None
                if attempt == self.attempts:
                    raise StorageError(f"could not read {where} after {attempt} tries: {redact(_describe(err))}",
                                       status=status) from None
                self._count(retries=1)
                time.sleep(delay + random.uniform(0, delay))
                delay *= 2
        raise AssertionError("unreachable")

    def _cat(self, url: str, start, end) -> bytes:
        fs = self.fs
        if getattr(fs, "async_impl", False):  # one event loop for every thread; the time limit there
            from fsspec.asyn import sync

            return sync(fs.loop, fs._cat_file, url, start=start, end=end, timeout=self.timeout)
        return fs.cat_file(url, start=start, end=end)

    def _count(self, requests: int = 0, bytes: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.stats.requests += requests
            self.stats.bytes += bytes
            self.stats.retries += retries


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__
