"""dali-ba 0.1's module of the byte stores, kept for imports of that version; they live in
``dali_ba.sources.store`` (local files, errors) and ``dali_ba.sources.remote`` (URLs) now."""

from .sources.remote import IN_FLIGHT, INDEX_THREADS, RangeFile, RemoteStore  # noqa: F401
from .sources.store import StorageError, is_url, redact, store_for  # noqa: F401
