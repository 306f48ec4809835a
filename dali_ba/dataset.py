"""dali-ba 0.1's module of the sample index and the folder sources, kept for imports of that
version; they live in ``dali_ba.sources`` (``index.py``, ``files.py``) now."""

from .sources.base import describe_sample  # noqa: F401
from .sources.files import IMG_EXTENSIONS, read_file_list, scan_image_folder  # noqa: F401
from .sources.index import SampleIndex, StringTable, indexed_by_label  # noqa: F401
