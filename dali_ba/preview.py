"""See the replicas: a grid of images, each with its M augmented replicas, for tuning a recipe by eye.

A thin layer over the loader (``dali-ba preview``): it builds the loader any source takes, takes one
batch, and lays out one row per image, the original first (whole, fitted into the tile), then its M
replicas denormalized with the recipe's mean and std. What it shows is what the model would get.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .loader import BatchAugmentLoader, FileListLoader, ImageFolderLoader, ParquetLoader, TarShardLoader
from .recipes import recipe_named

MARGIN = 4
BACKGROUND = (255, 255, 255)


def loader_for(source: str | os.PathLike, **options) -> BatchAugmentLoader:
    """The loader of ``source``: a folder (ImageFolder), a ``.txt`` file list, ``.tar`` shards or
    ``.parquet`` files (paths or patterns, as those loaders take them).

    Raises:
        ValueError: ``source`` is none of those.
    """
    text = os.fspath(source)
    if os.path.isdir(text):
        return ImageFolderLoader(text, **options)
    if text.endswith(".txt"):
        return FileListLoader(text, **options)
    if text.endswith(".tar"):
        return TarShardLoader(text, **options)
    if text.endswith(".parquet"):
        return ParquetLoader(text, **options)
    raise ValueError(f"source {text!r} is neither a folder (ImageFolder layout), a .txt file list, .tar shards nor "
                     f".parquet files")


def replica_grid(source, *, images: int = 6, aug_repeats: int = 8, recipe: str = "imagenet", image_size: int = 160,
                 seed: int = 0, **options) -> Image.Image:
    """The grid for ``images`` images of ``source``: one row each, the original, then its replicas.

    Args:
        source: As :func:`loader_for` takes it.
        images: Rows (images of one shuffled batch).
        aug_repeats: M, replicas per image.
        recipe: The recipe to show, with its ``options`` (``random_erase``, ``interpolation``, ...).
        image_size: Side of every tile.
        seed: Which images, and which draws.

    Returns:
        An RGB image of ``images`` rows and ``1 + aug_repeats`` columns of ``image_size`` tiles.
    """
    loader = loader_for(source, batch_size=images, aug_repeats=aug_repeats, recipe=recipe, image_size=image_size,
                        seed=seed, device="cpu", drop_last=False, num_threads=min(4, os.cpu_count() or 1), **options)
    try:
        batch, _ = next(iter(loader))
        rows = loader.last_indices
        originals = [_fitted(loader.dataset.read(int(i)), image_size) for i in rows]
    finally:
        loader.close()
    mean = torch.tensor(loader.config.mean or recipe_named(recipe).mean).view(1, 3, 1, 1)
    std = torch.tensor(loader.config.std or recipe_named(recipe).std).view(1, 3, 1, 1)
    pixels = ((batch.float() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    step = image_size + MARGIN
    grid = Image.new("RGB", (MARGIN + (1 + aug_repeats) * step, MARGIN + len(rows) * step), BACKGROUND)
    for row in range(len(rows)):
        grid.paste(originals[row], (MARGIN, MARGIN + row * step))
        for k in range(aug_repeats):
            tile = Image.fromarray(np.ascontiguousarray(pixels[row * aug_repeats + k]))
            grid.paste(tile, (MARGIN + (1 + k) * step, MARGIN + row * step))
    return grid


def _fitted(encoded: np.ndarray, size: int) -> Image.Image:
    """The whole image scaled to fit a ``size`` square, centred on the background."""
    image = Image.open(io.BytesIO(encoded.tobytes())).convert("RGB")
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    tile = Image.new("RGB", (size, size), BACKGROUND)
    tile.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return tile


def save_replica_grid(out: str | os.PathLike, source, **options) -> Path:
    """Writes :func:`replica_grid` as a PNG (``options`` as it takes them); returns the path."""
    out = Path(out)
    replica_grid(source, **options).save(out, format="PNG", optimize=True)
    return out
