"""dali-ba 0.1's module of the Parquet source, kept for imports of that version; it lives in
``dali_ba.sources.parquet`` now (``pip install dali-ba[parquet]``)."""

from .sources.parquet import CACHE_GROUPS, index_parquet, write_parquet  # noqa: F401
