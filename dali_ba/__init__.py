"""dali-ba: Batch Augmentation data loading for PyTorch on NVIDIA DALI.

Each step reads and decodes B images once and returns M independently augmented replicas of each
(Hoffer et al., "Augment your batch", CVPR 2020). Flow: ``dataset`` (which files) -> ``order``
(which batch) -> ``loader`` (read bytes, feed) -> ``pipeline``: ``decode`` (once) -> ``replicate``
(M x ``recipes``) -> torch tensors ``[B*M, 3, S, S]``.
"""

__version__ = "0.1.0"

from .config import LoaderConfig
from .dataset import IMG_EXTENSIONS, scan_image_folder
from .imagenet import imagenet_loaders
from .loader import DecodeError, ImageFolderLoader, SkippedFileWarning
from .recipes import RECIPES

__all__ = [
    "IMG_EXTENSIONS",
    "RECIPES",
    "DecodeError",
    "ImageFolderLoader",
    "LoaderConfig",
    "SkippedFileWarning",
    "__version__",
    "imagenet_loaders",
    "scan_image_folder",
]
