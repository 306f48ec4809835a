"""WebDataset tar shards as a source: indexed once (sidecars or headers, cached), each image one byte range.

``members.py`` WebDataset's rules and one tar file's index; ``walker.py`` the tar headers;
``sidecars.py`` the ``.idx`` and ``.labels`` sidecars, read and written; ``index.py`` one index
over many tar files, local or behind URLs, cached; ``source.py`` reading the images;
``writer.py`` ``make_shards``.
"""

from .index import INDEXED, index_tar_shards
from .members import LABEL_EXTENSION, TAR_IMAGE_EXTENSIONS, TarIndex
from .sidecars import has_sidecars, labels_path, shards_to_index, sidecar_path, write_sidecar, write_sidecars
from .source import TarSource
from .writer import make_shards, sample_key

__all__ = [
    "INDEXED",
    "LABEL_EXTENSION",
    "TAR_IMAGE_EXTENSIONS",
    "TarIndex",
    "TarSource",
    "has_sidecars",
    "index_tar_shards",
    "labels_path",
    "make_shards",
    "sample_key",
    "shards_to_index",
    "sidecar_path",
    "write_sidecar",
    "write_sidecars",
]
