"""Sources: where the samples are, and how their bytes are read. The first stage of the flow.

Every source builds one :class:`SampleIndex` (each sample's file, label and the
:class:`~.base.Source` that reads it) and reads bytes through one byte store (``store.py``: local
files; ``remote.py``: URLs through ``fsspec``). The stages after it (order, reader, feed) and the
bench use only the ``Source`` interface (``base.py``).

=================  ==========================================================================
``base.py``        the ``Source`` interface, and what reads return (``Read``, ``Fetched``)
``index.py``       ``SampleIndex``, ``StringTable`` (a million paths in little memory)
``files.py``       whole image files: ImageFolder trees, ``path label`` lists (``FileSource``)
``patterns.py``    brace ranges and globs of tar shards and Parquet files
``store.py``       byte stores: ``LocalStore``, ``store_for``, ``StorageError``
``remote.py``      ``RemoteStore``: URLs through fsspec, in flight together, retried
``cache.py``       build once, cache on disk, one builder per node (every cache of dali-ba)
``tar/``           WebDataset tar shards: members, walker, sidecars, index, source, writer
``parquet/``       Parquet files (Hugging Face layout): index, source, writer (needs pyarrow)
=================  ==========================================================================
"""

from .base import Fetched, Read, ReadPlan, Source, describe_sample
from .files import IMG_EXTENSIONS, FileSource, read_file_list, scan_image_folder
from .index import SampleIndex, StringTable, indexed_by_label
from .patterns import expand_paths
from .store import LocalStore, StorageError, is_url, redact, store_for
from .tar import TarSource, index_tar_shards, make_shards

__all__ = [
    "IMG_EXTENSIONS",
    "Fetched",
    "FileSource",
    "LocalStore",
    "Read",
    "ReadPlan",
    "SampleIndex",
    "Source",
    "StorageError",
    "StringTable",
    "TarSource",
    "describe_sample",
    "expand_paths",
    "index_tar_shards",
    "indexed_by_label",
    "is_url",
    "make_shards",
    "read_file_list",
    "redact",
    "scan_image_folder",
    "store_for",
]
