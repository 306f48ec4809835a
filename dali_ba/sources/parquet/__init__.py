"""Parquet files as a source, as Hugging Face ``datasets`` stores image sets (``pip install dali-ba[parquet]``).

``index.py`` the index (footers and label columns, local or behind URLs, cached); ``source.py``
reading the images, a row group at a time; ``writer.py`` ``write_parquet``. pyarrow is imported
here only, so ``import dali_ba`` does not need it.
"""

try:
    import pyarrow  # noqa: F401
except ImportError:  # the optional extra
    raise ImportError("reading Parquet needs pyarrow: pip install 'dali-ba[parquet]'") from None

from .index import index_parquet
from .source import CACHE_GROUPS, ParquetSource
from .writer import write_parquet

__all__ = ["CACHE_GROUPS", "ParquetSource", "index_parquet", "write_parquet"]
