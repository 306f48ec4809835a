"""torchvision's auto-augment ops on PIL, computed in numpy to PIL's own bytes, where that is faster.

Part of the resample stage (``resample.py``, through ``policies.py``). torchvision's ``_apply_op``
on a PIL image is what its reference recipes run. Each op here repeats the arithmetic of Pillow's
C code (or of its Python) on a uint8 ``HWC`` array, so the result is the same, byte for byte,
with no round trip through PIL. ``tests/test_policies.py`` checks every op at every magnitude of
torchvision's three spaces against ``_apply_op``, pixel for pixel.

- TranslateX and TranslateY are slice copies. torchvision translates by ``int(magnitude)``, so
  every output pixel of PIL's bilinear or bicubic transform lands on an input pixel, and PIL's
  filter costs the price of a rotation for nothing.
- Posterize is a mask (``ImageOps.posterize``), Solarize an exclusive or (``ImageOps.solarize``).
- Sharpness (``ImageEnhance.Sharpness``) blends the image with PIL's ``SMOOTH`` filter, the blend
  in float32 as ``Image.blend``. PIL sums the filter in float32 too, but the exact sum divided by
  13 is never within 1/26 of a rounding boundary, far more than float32's error, so integer
  arithmetic gives the same pixels.

The other ops stay with PIL (``None``). Each was measured no faster in numpy: Brightness,
AutoContrast and Contrast as lookup tables, Color, Equalize, and the generic affine transform
behind Rotate and the shears (rebuilt in float64 per pixel, it took 2.5 to 6 times PIL's time).
``benchmarks/README.md``, "The recipes on the CPU", has the figures.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np


def apply(image: np.ndarray, op: str, magnitude: float) -> np.ndarray | None:
    """``_apply_op(image, op, magnitude)`` as PIL computes it, as a new uint8 ``HWC`` array, or
    ``None`` for an op left to PIL."""
    made = _OPS.get(op)
    return made(image, magnitude) if made is not None else None


def _translate(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` moved by whole pixels, the uncovered part black: ``F.affine(translate=[dx, dy])``,
    whatever the filter (each output pixel falls on an input pixel)."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    if abs(dx) < w and abs(dy) < h:
        out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def _posterize(image, magnitude):  # ImageOps.posterize(int(magnitude))
    return image & np.uint8(~(2 ** (8 - int(magnitude)) - 1) & 0xFF)


def _solarize(image, magnitude):  # ImageOps.solarize: i < threshold stays, else 255 - i (= i ^ 255)
    threshold = math.ceil(magnitude)  # i < t for a whole i is i < ceil(t)
    if threshold > 255:
        return np.array(image)
    flipped = image >= max(threshold, 0)
    return image ^ np.negative(flipped.view(np.uint8))


def _sharpness(image, magnitude):  # ImageEnhance.Sharpness: a blend with ImageFilter.SMOOTH
    return _blend(_smooth(image), image, 1.0 + magnitude)


def _smooth(image: np.ndarray) -> np.ndarray:
    """``image.filter(ImageFilter.SMOOTH)``: the 3x3 kernel ``[1 1 1; 1 5 1; 1 1 1] / 13``, rounded,
    on the inner pixels; the border row and column copied. PIL sums in float32 and truncates
    ``sum + 0.5``; the exact sum ``t / 13`` is never within 1/26 of a rounding boundary, far above
    float32's error, so ``(t + 6) // 13`` is the same number."""
    h, w = image.shape[:2]
    out = np.array(image)  # the border stays as it is
    if h < 3 or w < 3:
        return out  # PIL copies an image smaller than its kernel
    wide = image.astype(np.uint16)
    rows = wide[:, :-2] + wide[:, 1:-1] + wide[:, 2:]  # horizontal sums of 3, (h, w-2)
    total = rows[:-2] + rows[1:-1] + rows[2:]  # the 3x3 sum around each inner pixel
    total += wide[1:-1, 1:-1] << 2  # the centre's weight is 5
    total += 6
    out[1:-1, 1:-1] = total // 13
    return out


def _blend(degenerate: np.ndarray, image: np.ndarray, alpha: float) -> np.ndarray:
    """``Image.blend(degenerate, image, alpha)`` pixel by pixel, in float32 as Pillow's C does."""
    low = degenerate.astype(np.float32)
    blended = image.astype(np.float32)
    blended -= low
    blended *= np.float32(alpha)
    blended += low
    np.clip(blended, 0, 255, out=blended)
    return blended.astype(np.uint8)


_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    # torchvision's _apply_op translates by int(magnitude)
    "TranslateX": lambda image, magnitude: _translate(image, int(magnitude), 0),
    "TranslateY": lambda image, magnitude: _translate(image, 0, int(magnitude)),
    "Sharpness": _sharpness,
    "Posterize": _posterize,
    "Solarize": _solarize,
}
