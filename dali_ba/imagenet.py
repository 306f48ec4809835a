"""Swap-in loaders for the standard ImageNet layout, ``root/train/<class>/...`` and ``root/val/<class>/...``.

The train loader is the batch-augmentation loader; the val loader reads every validation image
exactly once (deterministic ``"val"`` recipe, M=1, no shuffling, no dropped or padded samples), so
metrics summed over ranks cover the validation set exactly. The two are built from
``config.TrainOptions`` and the ``config.EvalOptions`` it shares its reading options with, so a
training option never reaches the val loader.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import TrainOptions
from .loader import ImageFolderLoader


def imagenet_loaders(
    root: str | os.PathLike,
    *,
    batch_size: int,
    aug_repeats: int,
    recipe: str = "imagenet",
    image_size: int = 224,
    val_image_size: int | None = None,
    val_resize_size: int | None = None,
    val_batch_size: int | None = None,
    val_interpolation: str | None = None,
    **options,
) -> tuple[ImageFolderLoader, ImageFolderLoader]:
    """Makes ``(train_loader, val_loader)`` for ``root/train`` and ``root/val``.

    Args:
        root: Folder holding ``train/`` and ``val/``, each in ImageFolder layout.
        batch_size: B, unique training images per step and rank.
        aug_repeats: M, augmented replicas of each training image.
        recipe: Training recipe (see ``ImageFolderLoader``).
        image_size: Output side of the train loader, and of the val loader unless ``val_image_size`` is set.
        val_image_size: The val loader's center crop (torchvision's ``--val-crop-size``).
        val_resize_size: The val loader's resize before the crop (``--val-resize-size``); ``None``
            is ``round(val_image_size / 0.875)``, 256 for 224.
        val_batch_size: Validation batch size; defaults to ``batch_size * aug_repeats``, the
            number of images the model already takes per training step.
        val_interpolation: The val resize's filter, where it differs from ``interpolation`` (a
            checkpoint's own preprocessing).
        **options: The train loader's other options (``config.TrainOptions``). Its reading
            options (``config.ReadOptions``: ``device``, ``dtype``, ``channels_last``,
            ``num_threads``, ``shard_id``/``num_shards``, ``on_error``, ``interpolation``, ...) go
            to the val loader too; the training's own (``seed``, ``ra_magnitude``,
            ``random_erase``, ``epoch_samples``, ``resample``, ...) do not.

    Returns:
        The train loader (shuffled, ``drop_last=True``) and the val loader.

    Raises:
        FileNotFoundError: ``root/train`` or ``root/val`` is missing.
        ValueError: The train and val folders have different classes, or an option out of range.
        TypeError: An option neither loader takes.
    """
    root = Path(root).expanduser()
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise FileNotFoundError(f"expected {str(root / split)!r}: imagenet_loaders reads root/train/<class>/ and root/val/<class>/")
    for fixed in ("shuffle", "drop_last"):
        if fixed in options:
            raise ValueError(f"{fixed} is set by imagenet_loaders (train: shuffled, drop_last=True; val: in order, every image once)")
    train_options = TrainOptions(batch_size=batch_size, aug_repeats=aug_repeats, recipe=recipe, image_size=image_size,
                                 shuffle=True, drop_last=True, **options)
    val_options = train_options.eval_options(
        batch_size=val_batch_size or batch_size * aug_repeats, image_size=val_image_size or image_size,
        resize_size=val_resize_size, interpolation=val_interpolation or train_options.interpolation)
    train = ImageFolderLoader(root / "train", **train_options.loader_options())
    val = ImageFolderLoader(root / "val", **val_options.loader_options())
    if train.classes != val.classes:
        missing = sorted(set(train.classes) ^ set(val.classes))[:5]
        raise ValueError(f"train and val have different class folders (e.g. {missing}); labels would not match")
    return train, val
