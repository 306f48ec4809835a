"""Random erasing, drawn per replica: torchvision's ``RandomErasing``, after normalization.

Part of the replicate stage. Each of the M replicas of an image decides on its own, with
probability ``p``, whether to erase a rectangle, and draws its own, as torchvision's
``RandomErasing(p, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0).get_params`` draws it on the
``S x S`` replica: up to 10 attempts of an area fraction in ``scale`` and a log-uniform aspect
ratio in ``ratio``, the first whose rounded sides fit inside the replica, placed uniformly; no
rectangle when no attempt fits. The draws are DALI random operators, so they follow the
pipeline's seed on both paths: the DALI path erases the normalized replicas with ``fn.erase``, the
CPU torch path (``resample.py``) gets the rectangles as an output and erases after normalizing.
The fill is 0, the data set mean after normalization, as in torchvision's reference recipes.

Every node here is a CPU node of float32 scalars, one per sample.
"""

from __future__ import annotations

import math

import numpy as np
from nvidia.dali import fn, types
from nvidia.dali import math as dmath

#: torchvision's RandomErasing defaults (the reference recipes' ``--random-erase p`` uses them).
ERASE_SCALE = (0.02, 0.33)
ERASE_RATIO = (0.3, 3.3)
ERASE_ATTEMPTS = 10


def erase_box(size: int, probability: float):
    """One replica's rectangle as ``(top, left, height, width)`` float32 nodes; height and width
    are 0 where the replica is not erased (the coin said no, or no attempt fitted)."""
    area = float(size * size)
    scale = fn.random.uniform(range=ERASE_SCALE, shape=[ERASE_ATTEMPTS])
    ratio = dmath.exp(fn.random.uniform(range=(math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])), shape=[ERASE_ATTEMPTS]))
    height = dmath.floor(dmath.sqrt(area * scale * ratio) + 0.5)  # int(round(.)), half-way cases aside
    width = dmath.floor(dmath.sqrt(area * scale / ratio) + 0.5)
    fits = fn.cast((height < size) & (width < size), dtype=types.FLOAT)
    # The first attempt that fits: attempts rank 10, 9, ..., 1; those that do not fit rank 0.
    rank = fits * types.Constant(np.arange(ERASE_ATTEMPTS, 0, -1, dtype=np.float32))
    best = fn.reductions.max(rank)
    first = fn.cast(rank == best, dtype=types.FLOAT) * fn.cast(best > 0, dtype=types.FLOAT)
    erase = fn.cast(fn.random.coin_flip(probability=probability), dtype=types.FLOAT)
    height = fn.reductions.sum(height * first) * erase
    width = fn.reductions.sum(width * first) * erase
    # torch.randint(0, size - h + 1): uniform over the places where the rectangle fits.
    top = dmath.min(dmath.floor(fn.random.uniform(range=(0.0, 1.0)) * (size - height + 1)), size - height)
    left = dmath.min(dmath.floor(fn.random.uniform(range=(0.0, 1.0)) * (size - width + 1)), size - width)
    return top, left, height, width


def erase_replicas(replicas, boxes):
    """Fills each replica's rectangle of ``replicas`` (``F`` = replica axis, with ``H`` and ``W``) with 0.

    Args:
        replicas: DALI node, one sample's M normalized replicas, layout ``FCHW`` or ``FHWC``.
        boxes: M ``(top, left, height, width)`` from :func:`erase_box`.
    """
    anchor = fn.cat(*[fn.stack(types.Constant(np.float32(f)), top, left) for f, (top, left, _, _) in enumerate(boxes)])
    shape = fn.cat(*[fn.stack(types.Constant(np.float32(1)), height, width) for _, _, height, width in boxes])
    return fn.erase(replicas, anchor=anchor, shape=shape, axis_names="FHW", fill_value=0.0)
