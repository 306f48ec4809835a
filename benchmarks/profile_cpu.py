"""Where a dali-ba step goes on the CPU: the pipeline alone, stage by stage, and the loader.

    .venv/bin/python benchmarks/profile_cpu.py [DATA_DIR] [--rounds 2] [--steps 10]

Every variant is the library's own pipeline (``build_pipeline``) fed from an in-memory cycle of
files, with one thing changed, so the differences are the cost of that thing. "previous release"
is the imagenet recipe as it was before ROI decoding (DALI's ``random_resized_crop`` on the whole
decoded image, then ``flip``), kept here to compare with. Variants run
interleaved for ``--rounds`` rounds (this machine is shared and noisy); the table shows each
round's median ms per step. Without DATA_DIR it uses ``dali-ba bench``'s cached default set.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from nvidia.dali import fn, types

from dali_ba import ImageFolderLoader
from dali_ba.dataset import scan_image_folder
from dali_ba.pipeline import build_pipeline
from dali_ba.recipes import RECIPES, OutputSpec, Recipe, _flip

B, M, SIZE = 32, 4, 224


def rrc(interp, antialias):
    def apply(images, spec):
        crop = fn.random_resized_crop(images, size=(spec.image_size,) * 2, random_area=(0.08, 1.0),
                                      random_aspect_ratio=(0.75, 4 / 3), interp_type=interp, antialias=antialias)
        return _flip(crop)

    return Recipe("variant", apply)


def decode_only(images, spec):
    return fn.crop(images, crop=(1, 1))  # keeps the decode, drops all augmentation work


def previous_release():
    """The imagenet recipe before ROI decoding: DALI's random_resized_crop on the whole image, then a flip."""
    return rrc(types.INTERP_LINEAR, True)


VARIANTS = {
    "read + decode only (M=1, 1x1 crop)": (Recipe("decode", decode_only), 1, types.FLOAT),
    "shipped imagenet recipe, M=1": (RECIPES["imagenet"], 1, types.FLOAT),
    "shipped, M=1, whole-image decode": (RECIPES["imagenet"], 1, types.FLOAT, False),
    "previous release, M=1": (previous_release(), 1, types.FLOAT),
    "shipped imagenet recipe, M=4": (RECIPES["imagenet"], M, types.FLOAT),
    "shipped, M=4, whole-image decode": (RECIPES["imagenet"], M, types.FLOAT, False),
    "previous release, M=4": (previous_release(), M, types.FLOAT),
    "shipped, M=4, fp16 output": (RECIPES["imagenet"], M, types.FLOAT16),
    "M=4, linear resampling without antialias": (rrc(types.INTERP_LINEAR, False), M, types.FLOAT),
    "M=4, nearest-neighbour resampling (floor)": (rrc(types.INTERP_NN, False), M, types.FLOAT),
}


def time_pipeline(files, recipe, m, dtype, steps, roi_decode=True):
    encoded = itertools.cycle([np.fromfile(f, dtype=np.uint8) for f in files])
    labels = np.zeros(B, dtype=np.int64)
    pipe = build_pipeline(source=lambda: ([next(encoded) for _ in range(B)], labels), recipe=recipe, aug_repeats=m,
                          spec=OutputSpec(SIZE, dtype, False), batch_size=B, device_id=None, num_threads=2,
                          seed=0, prefetch_queue_depth=2, roi_decode=roi_decode)
    pipe.schedule_run()
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        pipe.outputs()
        pipe.schedule_run()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def time_loader(root, threads, steps):
    loader = ImageFolderLoader(root, batch_size=B, aug_repeats=M, image_size=SIZE, device="cpu", num_threads=threads, seed=0)
    batches = (batch for _ in range(1000) for batch in loader)
    for _ in range(3):
        next(batches)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        next(batches)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main():
    from dali_ba.cli import default_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    root = args.data_dir or default_dataset()
    files = scan_image_folder(root).files[:256]
    rows = {name: [] for name in VARIANTS}
    rows.update({f"loader end to end, M=4, {t} DALI threads": [] for t in (2, 4)})
    for _ in range(args.rounds):
        for name, variant in VARIANTS.items():
            recipe, m, dtype, *roi_decode = variant
            rows[name].append(time_pipeline(files, recipe, m, dtype, args.steps, *roi_decode))
        for t in (2, 4):
            rows[f"loader end to end, M=4, {t} DALI threads"].append(time_loader(root, t, args.steps))
    print(f"B={B}, {SIZE}px, CPU, median ms/step per round ({args.rounds} rounds, {args.steps} steps each)")
    for name, values in rows.items():
        print(f"  {name:44s} " + "  ".join(f"{v:6.0f}" for v in values))


if __name__ == "__main__":
    main()
