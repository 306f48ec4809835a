"""Replicate stage: one decoded image in, M independently augmented replicas out.

Sits between the decode stage and the iterator. DALI operators are batch-in, batch-out with one
output per sample, so the M replicas are M branches of the recipe applied to the same decoded
node, stacked on a new leading axis. Each branch owns its random operators, so the replicas
differ; all share the one decode. The stack is still uint8; one fused crop-mirror-normalize then
normalizes, casts and transposes all M replicas at once, writing the float output a single time
instead of once per replica and again when stacking.
"""

from __future__ import annotations

from nvidia.dali import fn, types

from .erasing import erase_replicas
from .recipes import OutputSpec, Recipe
from .windows import Window


def replicate(images, labels, *, recipe: Recipe, aug_repeats: int, spec: OutputSpec, windows: list[Window] | None = None,
              erase: list | None = None):
    """Applies ``recipe`` ``aug_repeats`` times to every image.

    Args:
        images: DALI node, uint8 ``HWC`` images (the decoder's output).
        labels: DALI node, int64 scalars, one per image.
        recipe: The per-replica augmentation.
        aug_repeats: M, replicas per image.
        spec: Output size, dtype and layout of each replica.
        windows: For a ``windowed`` recipe, each replica's crop window in ``images`` coordinates.
        erase: Each replica's random-erasing rectangle (``erasing.erase_box``), filled with 0
            after normalization; ``None`` for none.

    Returns:
        ``(replicas, labels)``: per sample, ``[M, 3, S, S]`` (``[M, S, S, 3]`` when channels-last)
        of ``spec.dtype``, and ``[M]`` int64, on the device of ``images``. A batch of B such
        samples is the sample-major ``[B*M, ...]`` batch after a reshape, with no copy.
    """
    if recipe.windowed:
        branches = [recipe.apply(images, spec, window) for window in windows]
    else:
        branches = [recipe.apply(images, spec) for _ in range(aug_repeats)]
    # One replica needs no stacking copy, only a new leading axis.
    replicas = fn.stack(*branches, axis_name="F") if len(branches) > 1 else fn.expand_dims(branches[0], axes=[0], new_axis_names="F")
    replicas = fn.crop_mirror_normalize(
        replicas,
        dtype=spec.dtype,
        output_layout="F" + spec.layout,
        mean=[m * 255.0 for m in recipe.mean],
        std=[s * 255.0 for s in recipe.std],
    )
    if erase:
        replicas = erase_replicas(replicas, erase)
    return replicas, fn.stack(*([labels] * aug_repeats))


def replica_parameters(images, labels, *, windows: list[Window], erase: list | None = None, hflip: float = 0.5,
                       vflip: float = 0.0):
    """What the CPU resample stage (``resample.py``) needs to make the replicas, instead of the replicas.

    Used for recipes with ``resample_in_torch`` on the CPU: the decoded images pass through, and
    each replica's crop window and flip are drawn here, in DALI, from the pipeline's seed.

    Args:
        images: DALI node, uint8 ``HWC`` images (or the decoded regions), CPU.
        labels: DALI node, int64 scalars.
        windows: Each replica's crop window in ``images`` coordinates (M of them).
        erase: Each replica's random-erasing rectangle (``erasing.erase_box``), or ``None``.
        hflip, vflip: The probabilities of a horizontal and a vertical flip.

    Returns:
        ``(images, windows [M, 4] int32 as (top, left, height, width), flips [M] int32, labels [M] int64)``,
        a flip being 1 for horizontal plus 2 for vertical,
        with ``erase [M, 4] int32 (top, left, height, width)`` before the labels when ``erase`` is given.
    """
    boxes = fn.stack(*[fn.cat(window.start, window.size) for window in windows])
    flips = fn.stack(*[fn.random.coin_flip(probability=hflip, dtype=types.INT32)
                       + (2 * fn.random.coin_flip(probability=vflip, dtype=types.INT32) if vflip > 0 else 0)
                       for _ in windows])
    labels = fn.stack(*([labels] * len(windows)))
    if erase:
        rectangles = fn.cast(fn.stack(*[fn.stack(*box) for box in erase]), dtype=types.INT32)
        return images, boxes, flips, rectangles, labels
    return images, boxes, flips, labels
