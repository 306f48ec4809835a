"""Where a dali-ba step goes on the CPU: the pipeline alone, stage by stage, and the loader.

    .venv/bin/python benchmarks/profile_cpu.py [DATA_DIR] [--rounds 2] [--steps 10] [--only TEXT]

Every variant is the library's own pipeline (``build_pipeline``, followed by the resample stage
where the variant makes its replicas in torch) fed from an in-memory cycle of files, with one
thing changed, so the differences are the cost of that thing. "shipped" is what a CPU loader runs
(ROI decode, replicas made by torch); "DALI resample" makes them in DALI instead (the path before
the torch stage); "previous release" is the imagenet recipe as it was before ROI decoding (DALI's
``random_resized_crop`` on the whole decoded image, then ``flip``). Two ablations of the torch
stage show what its details are worth: its workers left at torch's default threads, and a fresh
output batch per step instead of recycled memory. Variants run interleaved for ``--rounds`` rounds
(this machine is shared and noisy); the table shows each round's median ms per step. Without
DATA_DIR it uses ``dali-ba bench``'s cached default set.
"""

from __future__ import annotations

import itertools
import time
from unittest import mock

import numpy as np
from nvidia.dali import fn, types

from common import median_step_ms, parse_args

from dali_ba import ImageFolderLoader
from dali_ba.sources import scan_image_folder
from dali_ba.pipeline import build_pipeline
import dali_ba.resample as torch_stage
from dali_ba.recipes import IMAGENET_MEAN, IMAGENET_STD, RECIPES, OutputSpec, Recipe, _flip

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


IMAGENET = RECIPES["imagenet"]
VARIANTS = {
    "read + decode only (M=1, 1x1 crop)": dict(recipe=Recipe("decode", decode_only), m=1),
    "shipped imagenet recipe, M=1": dict(m=1, resample="torch"),
    "DALI resample, M=1": dict(m=1),
    "DALI resample, M=1, whole-image decode": dict(m=1, roi_decode=False),
    "previous release, M=1": dict(recipe=previous_release(), m=1),
    "shipped imagenet recipe, M=4": dict(m=M, resample="torch"),
    "shipped, M=4, fp16 output": dict(m=M, resample="torch", dtype=types.FLOAT16),
    "shipped, M=4, torch's default threads": dict(m=M, resample="torch", ablate="threads"),
    "shipped, M=4, fresh output memory": dict(m=M, resample="torch", ablate="buffers"),
    "DALI resample, M=4": dict(m=M),
    "DALI resample, M=4, whole-image decode": dict(m=M, roi_decode=False),
    "previous release, M=4": dict(recipe=previous_release(), m=M),
    "M=4, linear resampling without antialias": dict(recipe=rrc(types.INTERP_LINEAR, False), m=M),
    "M=4, nearest-neighbour resampling (floor)": dict(recipe=rrc(types.INTERP_NN, False), m=M),
}


class FreshBuffers:
    """Ablation: a new output batch every step, as without recycling."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    def take(self, rows):
        return np.empty(self.shape, self.dtype)[:rows]


def time_pipeline(files, steps, *, recipe=IMAGENET, m, dtype=types.FLOAT, roi_decode=True, resample="dali", ablate=None):
    encoded = itertools.cycle([np.fromfile(f, dtype=np.uint8) for f in files])
    labels = np.zeros(B, dtype=np.int64)
    spec = OutputSpec(SIZE, dtype, False)
    pipe = build_pipeline(source=lambda: ([next(encoded) for _ in range(B)], labels), recipe=recipe, aug_repeats=m,
                          spec=spec, batch_size=B, device_id=None, num_threads=2, seed=0, prefetch_queue_depth=2,
                          roi_decode=roi_decode, resample=resample)
    resampler = None
    if resample == "torch":
        resampler = torch_stage.TorchResampler(spec, aug_repeats=m, batch_size=B, mean=IMAGENET_MEAN, std=IMAGENET_STD, threads=2)
        if ablate == "buffers":
            resampler._buffers = FreshBuffers(resampler._buffers._shape, resampler._buffers._dtype)
    # The workers start on the first batch, so the patch must hold while the steps run.
    with mock.patch.object(torch_stage, "one_intra_op_thread", lambda: None) if ablate == "threads" else mock.MagicMock():
        try:
            return median_step_ms(pipe, resampler, steps)
        finally:
            if resampler is not None:
                resampler.close()


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
    args = parse_args(__doc__, (("--rounds",), dict(type=int, default=2)), (("--steps",), dict(type=int, default=10)),
                      (("--only",), dict(help="run only the variants whose name contains this text")))
    root = args.data_dir
    files = scan_image_folder(root).files[:256]
    variants = {name: v for name, v in VARIANTS.items() if args.only is None or args.only in name}
    rows = {name: [] for name in variants}
    loaders = (2, 4) if args.only is None else ()
    rows.update({f"loader end to end, M=4, {t} DALI threads": [] for t in loaders})
    for _ in range(args.rounds):
        for name, variant in variants.items():
            rows[name].append(time_pipeline(files, args.steps, **variant))
        for t in loaders:
            rows[f"loader end to end, M=4, {t} DALI threads"].append(time_loader(root, t, args.steps))
    print(f"B={B}, {SIZE}px, CPU, median ms/step per round ({args.rounds} rounds, {args.steps} steps each)")
    for name, values in rows.items():
        print(f"  {name:44s} " + "  ".join(f"{v:6.0f}" for v in values))


if __name__ == "__main__":
    main()
