"""The DALI pipeline: only wires the stages, feed -> [windows] -> decode (once) -> replicate + augment.

With ``resample="torch"`` (the CPU path of the recipes that start with a random-resized crop)
the pipeline stops before the replicas: it outputs the decoded regions with each replica's window
and flip, and ``resample.py`` makes the replicas with torch's kernels (and torchvision's policy
ops, ``policies.py``).

The encoded files and their labels come in through one external source whose callback, given by
``loader.py``, returns the next batch of the epoch; that is what lets the loader control the epoch
order exactly and name the file behind a decode error.
"""

from __future__ import annotations

from nvidia.dali import fn, pipeline_def, types

from .decode import decode
from .erasing import erase_box
from .recipes import OutputSpec, Recipe
from .replicate import replica_parameters, replicate
from .windows import RandomResizedCropWindows, image_shape, union


def _graph(*, source, recipe: Recipe, aug_repeats: int, spec: OutputSpec, on_gpu: bool, roi_decode: bool, resample: str,
           gpu_options: dict, random_erase: float):
    encoded, labels = fn.external_source(
        source=source, num_outputs=2, batch=True, dtype=[types.UINT8, types.INT64], ndim=[1, 0]
    )
    windows = None
    if recipe.windowed and roi_decode:
        shape = image_shape(encoded)
        draw = RandomResizedCropWindows(shape, recipe.crop_scale)
        windows = [draw.draw() for _ in range(aug_repeats)]
        region = union(windows, shape, spec.image_size)
        images = decode(encoded, on_gpu=on_gpu, region=region, gpu_options=gpu_options)
        windows = [window.moved_by(region.start) for window in windows]
    else:
        images = decode(encoded, on_gpu=on_gpu, gpu_options=gpu_options)
        if recipe.windowed:
            draw = RandomResizedCropWindows(images.shape(dtype=types.INT32)[0:2], recipe.crop_scale)
            windows = [draw.draw() for _ in range(aug_repeats)]
    erase = [erase_box(spec.image_size, random_erase) for _ in range(aug_repeats)] if random_erase else None
    if resample == "torch":
        return replica_parameters(images, labels, windows=windows, erase=erase, hflip=spec.hflip, vflip=spec.vflip)
    if on_gpu:
        labels = labels.gpu()
    return replicate(images, labels, recipe=recipe, aug_repeats=aug_repeats, spec=spec, windows=windows, erase=erase)


def build_pipeline(
    *,
    source,
    recipe: Recipe,
    aug_repeats: int,
    spec: OutputSpec,
    batch_size: int,
    device_id: int | None,
    num_threads: int,
    seed: int,
    prefetch_queue_depth: int,
    roi_decode: bool = True,
    resample: str = "dali",
    gpu_options: dict | None = None,
    random_erase: float = 0.0,
):
    """Builds the batch-augmentation pipeline.

    Args:
        source: Callable returning the next batch as ``(encoded, labels)``: a list of 1-D uint8
            arrays (whole files) and an int64 array of their labels, at most ``batch_size`` long.
            It raises ``StopIteration`` at the end of the epoch.
        recipe: Per-replica augmentation.
        aug_repeats: M.
        spec: Output size, dtype and layout.
        batch_size: Largest batch the feed will give (B); smaller batches are allowed.
        device_id: CUDA device to decode and augment on, or ``None`` for a CPU-only pipeline.
        num_threads: DALI CPU worker threads.
        seed: Seed of the augmentations' random draws.
        prefetch_queue_depth: Batches DALI may have in flight.
        roi_decode: For windowed recipes, decode only the union of the M crop windows; ``False``
            decodes whole images and crops after (the path before ROI decoding, kept to compare).
        resample: ``"dali"`` makes the replicas in the pipeline; ``"torch"`` (CPU, a recipe with
            ``resample_in_torch``) leaves them to ``resample.py``.
        gpu_options: Decoder options on top of ``decode.GPU_OPTIONS`` (``mixed`` only).
        random_erase: Probability of torchvision's random erasing, per replica (``erasing.py``).

    Returns:
        A built ``nvidia.dali.Pipeline`` with outputs ``(replicas [B, M, ...], labels [B, M])``,
        or with ``resample="torch"`` ``(regions, windows [B, M, 4], flips [B, M], labels [B, M])``,
        with ``erase [B, M, 4]`` before the labels when ``random_erase`` > 0.
    """
    if resample == "torch" and not (recipe.resample_in_torch and device_id is None):
        raise ValueError(f"resample='torch' needs a CPU pipeline and a recipe that starts with a crop and a flip, not "
                         f"{recipe.name!r}")
    define = pipeline_def(_graph, enable_conditionals=recipe.needs_conditionals)
    pipe = define(
        source=source,
        recipe=recipe,
        aug_repeats=aug_repeats,
        spec=spec,
        on_gpu=device_id is not None,
        roi_decode=roi_decode,
        resample=resample,
        gpu_options=dict(gpu_options or {}),
        random_erase=float(random_erase),
        batch_size=batch_size,
        device_id=device_id,
        num_threads=num_threads,
        seed=seed,
        prefetch_queue_depth=prefetch_queue_depth,
        # The loader hands outputs to torch without a copy; only the dynamic executor gives each
        # batch its own memory instead of recycling a fixed pool.
        exec_dynamic=True,
    )
    pipe.build()
    return pipe
