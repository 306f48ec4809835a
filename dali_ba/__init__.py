"""dali-ba: Batch Augmentation data loading for PyTorch on NVIDIA DALI.

Each step reads and decodes B images once and returns M independently augmented replicas of each
(Hoffer et al., "Augment your batch", CVPR 2020). Flow: ``dataset`` / ``shards`` / ``parquet`` (which samples) ->
``order`` (which batch) -> ``reader`` (bytes, read ahead) -> ``feed`` -> ``pipeline``: ``windows``
-> ``decode`` (once) -> ``replicate`` (M x ``recipes``) -> torch tensors ``[B*M, 3, S, S]``; on the
CPU, ``imagenet`` replicas are made after DALI by ``resample``; ``loader`` walks the epochs.
"""

__version__ = "0.1.0"

from .config import LoaderConfig
from .dataset import IMG_EXTENSIONS, SampleIndex, read_file_list, scan_image_folder
from .feed import DecodeError, SkippedFileWarning
from .imagenet import imagenet_loaders
from .loader import BatchAugmentLoader, FileListLoader, ImageFolderLoader, ParquetLoader, TarShardLoader
from .recipes import RECIPES
from .shards import expand_shards, index_tar_shards, make_shards
from .storage import StorageError

__all__ = [
    "IMG_EXTENSIONS",
    "RECIPES",
    "BatchAugmentLoader",
    "DecodeError",
    "FileListLoader",
    "ImageFolderLoader",
    "LoaderConfig",
    "ParquetLoader",
    "SampleIndex",
    "SkippedFileWarning",
    "StorageError",
    "TarShardLoader",
    "__version__",
    "expand_shards",
    "imagenet_loaders",
    "index_tar_shards",
    "make_shards",
    "read_file_list",
    "scan_image_folder",
]
