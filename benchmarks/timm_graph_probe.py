"""timm's RandAugment ops in DALI (``dali_ba.timm_graph``, the GPU path) against timm's PIL ops, op by op.

    .venv/bin/python benchmarks/timm_graph_probe.py [--images 16] [--size 224]

Takes photos of the bench's default data set (``dali-ba bench`` makes it once), resized to
``size x size`` as a replica is, and applies every op of timm's RandAugment (both sets, ``inc0``
and ``inc1``) and AutoAugment (``PosterizeOriginal``) at magnitudes 3 and 9, both signs, once with DALI (on the CPU: the same operators
as on a GPU) and once with timm's own PIL op, with bilinear and bicubic filters. Prints the mean
and largest |difference| in levels and the share of values that differ. Needs ``dali-ba[timm]``.
"""

from __future__ import annotations

import argparse
import glob
import warnings

import numpy as np
from nvidia.dali import fn, pipeline_def
from PIL import Image

from dali_ba.cli import default_dataset
from dali_ba.recipes import IMAGENET_MEAN
from dali_ba.timm_augment import ALL_OPS, _arguments
from dali_ba.timm_graph import apply_op

FILL = tuple(min(255, round(255 * x)) for x in IMAGENET_MEAN)
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")


class Coin:
    """timm's ``_randomly_negate`` reads ``random() > 0.5``: 1.0 negates, 0.0 keeps the sign."""

    def __init__(self, sign: int):
        self.value = 0.0 if sign > 0 else 1.0

    def random(self) -> float:
        return self.value


def dali_op(photos, name, magnitude, sign, interpolation, size):
    @pipeline_def(batch_size=len(photos), num_threads=2, device_id=None, enable_conditionals=True)
    def pipe():
        images = fn.external_source(source=lambda: photos, layout="HWC", batch=True)
        return apply_op(images, name, magnitude, sign, fill=FILL, interpolation=interpolation, size=size)

    pipeline = pipe()
    pipeline.build()
    (out,) = pipeline.run()
    return np.stack([np.asarray(out[i]) for i in range(len(photos))])


def timm_op(photos, name, magnitude, sign, resample):
    from timm.data.auto_augment import NAME_TO_OP

    arguments = _arguments(name, magnitude, Coin(sign))
    if name.startswith("Posterize") and arguments[0] <= 0:
        return np.zeros_like(np.stack(photos))  # timm 1.0.31 asks Pillow 13 for 0 bits, which it refuses
    return np.stack([np.asarray(NAME_TO_OP[name](Image.fromarray(p), *arguments, fillcolor=FILL, resample=resample))
                     for p in photos])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    files = sorted(glob.glob(f"{default_dataset()}/*/*"))[:: max(1, 1000 // args.images)][: args.images]
    photos = [np.asarray(Image.open(f).convert("RGB").resize((args.size, args.size), Image.BILINEAR)) for f in files]
    print(f"{len(photos)} photos of {default_dataset()}, {args.size} px; |DALI - timm's PIL| in levels")
    print(f"{'op':22} {'filter':8} {'mean':>7} {'max':>4} {'differ':>7}")
    for name in ALL_OPS:
        filters = (("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC))
        for label, resample in filters if name in GEOMETRIC else filters[:1]:
            diffs = [np.abs(dali_op(photos, name, m, s, label, args.size).astype(int)
                            - timm_op(photos, name, m, s, resample)) for m in (3.0, 9.0) for s in (1, -1)]
            diff = np.stack(diffs)
            print(f"{name:22} {label:8} {diff.mean():7.3f} {diff.max():4d} {(diff > 0).mean():7.2%}")


if __name__ == "__main__":
    main()
