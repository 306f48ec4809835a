"""torchvision's bilinear shears on PIL against numpy: the shipped per-line shift
(``dali_ba/pil_ops.py``, ``shift_lines``) and an exact per-pixel rebuild, for closeness and time.

    .venv/bin/python benchmarks/shear_probe.py

1. The per-pixel rebuild (``shear_x``): each output pixel samples ``xin = a*(x+0.5) + b*(y+0.5) +
   c`` in its own row, 0 where ``xin`` falls outside ``[0, w)``, else the neighbours at
   ``floor(xin - 0.5)`` (clamped) blended in float64 and truncated, as PIL's bilinear filter does.
   It gives PIL's bytes (rounding instead of truncating is printed too, to show the check can
   fail), but slowly: why the shipped shear blends whole lines with one weight a line instead.
2. The shipped shears on a 224 px photo and two odd sizes (37x51, 64x48) at every magnitude of
   TrivialAugment's, RandAugment's and AutoAugment's spaces, both signs: the largest difference to PIL, the largest share of values
   that differ, the mean difference, and torchvision's own tensor back-end's mean difference to
   PIL on the same calls.
3. Time a call, each way run alone, 100 calls (224 px, magnitude 0.3).
"""

import math
import time

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as aa
from torchvision.transforms.functional import _get_inverse_affine_matrix

from dali_ba import pil_ops
from dali_ba.synthetic import natural_image


def shear_x(image: np.ndarray, magnitude: float, finish=np.trunc) -> np.ndarray:
    h, w = image.shape[:2]
    a, b, c = _get_inverse_affine_matrix([0.0, 0.0], 0.0, [0.0, 0.0], 1.0,
                                         [math.degrees(math.atan(magnitude)), 0.0])[:3]
    xin = a * (np.arange(w) + 0.5)[None, :] + b * (np.arange(h) + 0.5)[:, None] + c
    inside = (xin >= 0) & (xin < w)
    left = np.floor(xin - 0.5)
    fraction = (xin - 0.5 - left)[..., None]
    left = left.astype(np.int64)
    rows = np.arange(h)[:, None]
    p0 = image[rows, np.clip(left, 0, w - 1)].astype(np.float64)
    p1 = image[rows, np.clip(left + 1, 0, w - 1)].astype(np.float64)
    out = finish(p0 + (p1 - p0) * fraction)
    out[~inside] = 0
    return out.astype(np.uint8)


def main() -> None:
    torch.set_num_threads(1)
    image = natural_image(np.random.default_rng(0), 224, 224)
    picture = Image.fromarray(image)

    def pil(op, m):
        return np.asarray(aa._apply_op(picture, op, m, InterpolationMode.BILINEAR, None))

    for m in (0.3, -0.3, 0.1, 0.017, -0.2):
        expected = pil("ShearX", m).astype(int)
        for name, finish in (("trunc", np.trunc), ("round", lambda v: np.floor(v + 0.5))):
            print(f"per-pixel, magnitude {m:+.3f}, {name}: {int((shear_x(image, m, finish) != expected).sum())} values differ")

    magnitudes = set()
    for space in (aa.TrivialAugmentWide()._augmentation_space(31), aa.RandAugment()._augmentation_space(31, (224, 224)),
                  aa.AutoAugment()._augmentation_space(10, (224, 224))):
        magnitudes |= {float(m) for m in space["ShearX"][0]}
    rng = np.random.default_rng(1)
    photos = [image, natural_image(rng, 37, 51), natural_image(rng, 64, 48)]  # and two odd sizes
    for op in ("ShearX", "ShearY"):
        largest, share, ours, theirs = 0, 0.0, [], []
        for photo in photos:
            tensor = torch.from_numpy(photo).permute(2, 0, 1)
            for m in sorted(magnitudes | {-m for m in magnitudes}):
                expected = np.asarray(aa._apply_op(Image.fromarray(photo), op, m, InterpolationMode.BILINEAR,
                                                   None)).astype(int)
                difference = np.abs(pil_ops.apply(photo, op, m).astype(int) - expected)
                largest, share = max(largest, int(difference.max())), max(share, float((difference > 0).mean()))
                ours.append(difference.mean())
                other = aa._apply_op(tensor, op, m, InterpolationMode.BILINEAR, None).permute(1, 2, 0).numpy()
                theirs.append(np.abs(other.astype(int) - expected).mean())
        print(f"shipped {op}, {len(ours)} calls: largest difference {largest}, at most {100 * share:.2f}% of "
              f"values differ, mean difference {np.mean(ours):.4f}; torchvision's tensor back-end: mean "
              f"{np.mean(theirs):.3f} ({min(theirs):.3f}-{max(theirs):.3f})")

    ways = {"per-pixel numpy ShearX": lambda: shear_x(image, 0.3), "shipped ShearX": lambda: pil_ops.apply(image, "ShearX", 0.3),
            "PIL ShearX": lambda: pil("ShearX", 0.3), "shipped ShearY": lambda: pil_ops.apply(image, "ShearY", 0.3),
            "PIL ShearY": lambda: pil("ShearY", 0.3)}
    for name, run in ways.items():
        run()
        start = time.perf_counter()
        for _ in range(100):
            run()
        print(f"{name}: {(time.perf_counter() - start) * 10:.2f} ms a call (224 px)")


if __name__ == "__main__":
    main()
