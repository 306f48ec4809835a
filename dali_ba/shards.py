"""dali-ba 0.1's module of the tar-shard source, kept for imports of that version; it lives in
``dali_ba.sources.tar`` now (and the patterns in ``dali_ba.sources.patterns``)."""

from .sources.patterns import expand_paths, expand_shards  # noqa: F401
from .sources.tar import (  # noqa: F401
    INDEXED,
    LABEL_EXTENSION,
    TAR_IMAGE_EXTENSIONS,
    has_sidecars,
    index_tar_shards,
    labels_path,
    make_shards,
    sample_key,
    shards_to_index,
    sidecar_path,
    write_sidecar,
    write_sidecars,
)
