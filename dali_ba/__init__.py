"""dali-ba: Batch Augmentation data loading for PyTorch on NVIDIA DALI.

Each step reads and decodes B images once and returns M independently augmented replicas of each
(Hoffer et al., "Augment your batch", CVPR 2020). Flow: ``sources`` (which samples, and their bytes) ->
``order`` (which batch) -> ``reader`` (bytes, read ahead) -> ``feed`` -> ``pipeline``: ``windows``
-> ``decode`` (once) -> ``replicate`` (M x ``recipes``) -> torch tensors ``[B*M, 3, S, S]``; on the
CPU, ``imagenet`` replicas are made after DALI by ``resample``; ``loader`` walks the epochs.
"""

__version__ = "0.1.0"

from .config import EvalOptions, LoaderConfig, ReadOptions, TrainOptions
from .feed import DecodeError, SkippedFileWarning
from .imagenet import imagenet_loaders
from .loader import BatchAugmentLoader, FileListLoader, ImageFolderLoader, ParquetLoader, TarShardLoader
from .recipes import RECIPES
from .sources import IMG_EXTENSIONS, SampleIndex, StorageError, index_tar_shards, make_shards, read_file_list, scan_image_folder
from .sources.patterns import expand_paths, expand_shards

__all__ = [
    "IMG_EXTENSIONS",
    "RECIPES",
    "BatchAugmentLoader",
    "DecodeError",
    "EvalOptions",
    "FileListLoader",
    "ImageFolderLoader",
    "LoaderConfig",
    "ParquetLoader",
    "ReadOptions",
    "SampleIndex",
    "SkippedFileWarning",
    "StorageError",
    "TarShardLoader",
    "TrainOptions",
    "__version__",
    "expand_paths",
    "expand_shards",
    "imagenet_loaders",
    "index_tar_shards",
    "make_shards",
    "read_file_list",
    "scan_image_folder",
]
