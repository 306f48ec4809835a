"""PIL's bilinear ``ShearX`` (torchvision's ``_apply_op``) rebuilt in numpy pixel by pixel, checked
against PIL and timed against it: exact, but five times slower than PIL. It shows why the shipped
shear (``dali_ba/pil_ops.py``, ``_shear``) blends whole lines with one weight a line instead.

    .venv/bin/python benchmarks/shear_probe.py

With ``center=[0, 0]`` each output pixel samples ``xin = a*(x+0.5) + b*(y+0.5) + c`` in its own
row: 0 where ``xin`` falls outside ``[0, w)``, else the neighbours at ``floor(xin - 0.5)``
(clamped) blended in float64 and truncated, as PIL's bilinear filter does. Rounding instead of
truncating is printed too, to show that the check can fail.
"""

import math
import time

import numpy as np
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as aa
from torchvision.transforms.functional import _get_inverse_affine_matrix

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
    image = natural_image(np.random.default_rng(0), 224, 224)
    picture = Image.fromarray(image)

    def pil(m):
        return np.asarray(aa._apply_op(picture, "ShearX", m, InterpolationMode.BILINEAR, None))

    for m in (0.3, -0.3, 0.1, 0.017, -0.2):
        expected = pil(m).astype(int)
        for name, finish in (("trunc", np.trunc), ("round", lambda v: np.floor(v + 0.5))):
            print(f"magnitude {m:+.3f}, {name}: {int((shear_x(image, m, finish) != expected).sum())} values differ")
    for name, run in (("numpy", lambda: shear_x(image, 0.3)), ("PIL", lambda: pil(0.3))):
        start = time.perf_counter()
        for _ in range(100):
            run()
        print(f"{name}: {(time.perf_counter() - start) * 10:.2f} ms a call (224 px)")


if __name__ == "__main__":
    main()
