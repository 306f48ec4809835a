"""torchvision's bilinear Rotate on PIL against two rebuilds, for closeness and time: why Rotate
stays with PIL in ``dali_ba/pil_ops.py``.

    .venv/bin/python benchmarks/rotate_probe.py

1. ``rotate_exact``: PIL's generic affine transform rebuilt in torch, float64, per pixel: the
   sample point ``a*(x+0.5) + b*(y+0.5) + c`` (PIL's ``Image.rotate`` matrix), black where it falls
   outside the image, else the clamped neighbours blended along x, then along y where the next row
   exists, and truncated, as PIL's bilinear filter does.
2. ``rotate_grid``: the same sample points through torch's float32 ``grid_sample`` (border
   padding), truncated: within one level of PIL.
Both are checked on a 224 px photo and two odd sizes at 12 angles (largest difference to PIL, and
the largest share of values that differ), then each way is timed on 100 calls (224 px, 30 degrees).
"""

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dali_ba.synthetic import natural_image


def pil_matrix(angle: float, w: int, h: int) -> list[float]:
    """The inverse matrix of ``Image.rotate(angle)`` about the centre (Pillow's own arithmetic)."""
    cx, cy = w / 2, h / 2
    angle = -math.radians(angle % 360.0)
    a, b, d, e = (round(math.cos(angle), 15), round(math.sin(angle), 15), round(-math.sin(angle), 15),
                  round(math.cos(angle), 15))
    return [a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy]


def sample_points(image: np.ndarray, angle: float):
    h, w = image.shape[:2]
    a, b, c, d, e, f = pil_matrix(angle, w, h)
    xs = torch.arange(w, dtype=torch.float64).add_(0.5)
    ys = torch.arange(h, dtype=torch.float64).add_(0.5)[:, None]
    xin = (xs * a + ys * b).add_(c)  # PIL: a * x + b * y + c, in double
    yin = (xs * d + ys * e).add_(f)
    return xin, yin, (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)


def rotate_exact(image: np.ndarray, angle: float) -> np.ndarray:
    h, w, channels = image.shape
    xin, yin, inside = sample_points(image, angle)
    xin, yin = xin - 0.5, yin - 0.5
    x0, y0 = xin.floor(), yin.floor()
    dx, dy = (xin - x0).view(-1, 1), (yin - y0).view(-1, 1)
    x0, y0 = x0.to(torch.int64), y0.to(torch.int64)
    left, right = x0.clamp(0, w - 1), (x0 + 1).clamp(0, w - 1)
    flat = torch.from_numpy(np.ascontiguousarray(image)).view(-1, channels)

    def along_x(row):
        start = row.clamp(0, h - 1) * w
        p0 = flat[(start + left).view(-1)].to(torch.float64)
        p1 = flat[(start + right).view(-1)].to(torch.float64)
        return p1.sub_(p0).mul_(dx).add_(p0)

    top, bottom = along_x(y0), along_x(y0 + 1)
    blended = torch.where(((y0 + 1) < h).view(-1, 1), bottom.sub_(top).mul_(dy).add_(top), top)
    out = blended.to(torch.uint8)  # truncates
    out[~inside.view(-1)] = 0
    return out.view(h, w, channels).numpy()


def rotate_grid(image: np.ndarray, angle: float) -> np.ndarray:
    h, w = image.shape[:2]
    xin, yin, inside = sample_points(image, angle)
    grid = torch.stack([xin * 2 / w - 1, yin * 2 / h - 1], -1).to(torch.float32)[None]  # align_corners=False
    source = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(torch.float32)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    out = out.permute(1, 2, 0).to(torch.uint8)
    out[~inside] = 0
    return out.numpy()


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = [natural_image(rng, 224, 224), natural_image(rng, 37, 51), natural_image(rng, 64, 48)]
    angles = [4.5, -4.5, 30.0, -30.0, 13.5, 135.0, -135.0, 1.0, 60.0, 89.0, 91.0, 179.0]
    for rebuild in (rotate_exact, rotate_grid):
        largest, share = 0, 0.0
        for image in images:
            for angle in angles:
                expected = np.asarray(Image.fromarray(image).rotate(angle, Image.BILINEAR)).astype(int)
                difference = np.abs(rebuild(image, angle).astype(int) - expected)
                largest, share = max(largest, int(difference.max())), max(share, float((difference > 0).mean()))
        print(f"{rebuild.__name__}: largest difference {largest}, largest share of values differing {share:.4f}")
    image = images[0]
    ways = {"PIL": lambda: np.array(Image.fromarray(image).rotate(30.0, Image.BILINEAR)),
            "rotate_exact": lambda: rotate_exact(image, 30.0), "rotate_grid": lambda: rotate_grid(image, 30.0)}
    for name, way in ways.items():
        way()
        start = time.perf_counter()
        for _ in range(100):
            way()
        print(f"{name}: {(time.perf_counter() - start) * 10:.2f} ms a call")


if __name__ == "__main__":
    main()
