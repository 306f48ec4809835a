"""torchvision's auto-augment ops on PIL, computed in numpy to PIL's own bytes (or to within one
level), where that is faster than PIL.

Part of the resample stage (``resample.py``, through ``policies.py``). torchvision's ``_apply_op``
on a PIL image is what its reference recipes run. Each op here repeats the arithmetic of Pillow's
C code (or of its Python) on a uint8 ``HWC`` array, with no round trip through PIL (Equalize
keeps PIL's histogram).
``tests/test_policies.py`` checks every op at every magnitude of torchvision's three spaces
against ``_apply_op``.

Byte for byte (``EXACT``):

- TranslateX and TranslateY are slice copies. torchvision translates by ``int(magnitude)``, so
  every output pixel of PIL's bilinear or bicubic transform lands on an input pixel, and PIL's
  filter costs the price of a rotation for nothing.
- Posterize is a mask (``ImageOps.posterize``), Solarize an exclusive or (``ImageOps.solarize``),
  Invert a bitwise not (``ImageOps.invert``).
- Sharpness (``ImageEnhance.Sharpness``) blends the image with PIL's ``SMOOTH`` filter, the blend
  in float32 as ``Image.blend``. PIL sums the filter in float32 too, but the exact sum divided by
  13 is never within 1/26 of a rounding boundary, far more than float32's error, so integer
  arithmetic gives the same pixels.
- Brightness, Contrast and Color (``ImageEnhance``) are the same float32 blend with black, with
  the grey of the image's mean level, and with its grayscale. PIL's integer grayscale is exact in
  float32 (every partial sum is a whole number under 2**24).
- AutoContrast (``ImageOps.autocontrast``) stretches each channel from its minimum to its maximum
  with PIL's float64 table; Equalize (``ImageOps.equalize``) builds PIL's table from PIL's own
  histogram in numpy instead of level by level in Python.

To within one level (``WITHIN_ONE``, and timm's ops through ``shift_lines``):

- ShearX and ShearY with the bilinear filter. Each output line is its input line moved by a
  constant shift, so one line is two slices blended by one weight, where PIL's generic transform
  recomputes the weight for every pixel (``shift_lines``). Where a blend lands on a whole level
  within the weight's last bits, the two differ by one: ``tests/test_policies.py`` allows 2% of
  the values, ``tests/test_timm_augment.py`` 5% for timm's relative translations. On every
  magnitude of torchvision's spaces no value differed in ``benchmarks/shear_probe.py``, where
  torchvision's own tensor back-end differed from PIL by a mean of about 0.8.

Rotate, and the geometric ops with another filter, stay with PIL (``None``). PIL's Rotate can be
rebuilt exactly in float64 per pixel, or to within one level with torch's float32 ``grid_sample``,
but both were slower than PIL's generic transform (``benchmarks/rotate_probe.py``).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided
from PIL import Image


def apply(image: np.ndarray, op: str, magnitude: float, interpolation: str = "bilinear") -> np.ndarray | None:
    """``_apply_op(image, op, magnitude, interpolation)`` as PIL computes it, as a new uint8 ``HWC``
    array, or ``None`` for an op left to PIL (the shears with a filter other than bilinear)."""
    made = _OPS.get(op)
    if made is None or (op in WITHIN_ONE and interpolation != "bilinear"):
        return None
    return made(image, magnitude)


def chain(image: np.ndarray, ops: Sequence, in_numpy: Callable, in_pil: Callable) -> np.ndarray:
    """``image`` (uint8 ``HWC``) with ``ops`` applied in order: each by ``in_numpy(array, op)``
    where that gives an array, else by ``in_pil(picture, op)`` on a PIL image. The image changes
    hands between numpy and PIL only where the path does; the result is a new writable array, or
    ``image`` itself where no op changed it."""
    picture = None  # the image as PIL holds it, while PIL's ops run
    for op in ops:
        made = in_numpy(np.asarray(picture) if picture is not None else image, op)
        if made is not None:
            image, picture = made, None
        else:
            picture = in_pil(picture if picture is not None else Image.fromarray(image), op)
    if picture is not None:
        image = np.array(picture)  # writable, as torch wants the arrays it wraps
    return image


def _translate(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` moved by whole pixels, the uncovered part black: ``F.affine(translate=[dx, dy])``,
    whatever the filter (each output pixel falls on an input pixel)."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    if abs(dx) < w and abs(dy) < h:
        out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def _shear(image: np.ndarray, magnitude: float, axis: int) -> np.ndarray:
    """``_apply_op``'s ShearX (``axis`` 1) or ShearY (``axis`` 0), black outside: torchvision hands
    PIL the inverse matrix ``(1, tan(atan(m)), 0, 0, 1, 0)`` (centre 0), so line ``y`` samples its
    input line at ``x + 0.5 + c * (y + 0.5)`` (``shift_lines``)."""
    from torchvision.transforms.functional import _get_inverse_affine_matrix

    shear = [0.0, 0.0]
    shear[1 - axis] = math.degrees(math.atan(magnitude))
    matrix = _get_inverse_affine_matrix([0.0, 0.0], 0.0, [0.0, 0.0], 1.0, shear)
    return shift_lines(image, axis, matrix[1] if axis == 1 else matrix[3])


def shift_lines(image: np.ndarray, axis: int, coefficient: float, offset: float = 0.0, *,
                fill: tuple = (0, 0, 0)) -> np.ndarray:
    """PIL's affine transform whose matrix moves each line along itself, to within one level: the
    rows (``axis`` 1; PIL's ``(1, c, offset, 0, 1, 0)``) or the columns (``axis`` 0; ``(1, 0, 0, c,
    1, offset)``), line ``y`` sampled at ``x + 0.5 + c * (y + 0.5) + offset``, with PIL's bilinear
    filter, ``fill`` outside. Shears and translations by a fraction of a pixel are such transforms
    (torchvision's shears; timm's shears and relative translations).

    Along a line the sample point moves by whole pixels, so a line is two slices of its input
    blended by one weight, where PIL's generic transform recomputes the weight for every pixel in
    float64, which moves it in its last bits. The two agree except where the blend lands on a whole
    level to within those bits, where truncation gives one level more or less
    (``tests/test_policies.py`` bounds how often). The other axis's weight is 0, which PIL's
    filter multiplies out exactly. (The bicubic filter's four taps, done the same way in float64,
    were slower than PIL in a trial, so bicubic stays with PIL.)
    """
    if axis == 1:
        return _shift_rows(image, coefficient, offset, fill)
    # Columns are the rows of the transposed image. PIL transposes in half numpy's time, and either
    # costs less than gathering along columns, whose index arrays are eight times the image.
    rows = np.asarray(Image.fromarray(np.ascontiguousarray(image)).transpose(Image.Transpose.TRANSPOSE))
    moved = _shift_rows(rows, coefficient, offset, fill)
    return np.array(Image.fromarray(moved).transpose(Image.Transpose.TRANSPOSE))


def _shift_rows(image: np.ndarray, coefficient: float, offset: float, fill: tuple) -> np.ndarray:
    rows, length = image.shape[:2]
    shift = coefficient * (np.arange(rows) + 0.5) + offset
    whole = np.floor(shift)
    fraction = (shift - whole)[:, None, None]
    whole = whole.astype(np.intp)
    # Each row padded: its edge pixel once on each side (PIL's clamped neighbours), then the fill
    # colour, wide enough for the largest shift.
    margin = int(np.abs(whole).max()) + 3
    width = length + 2 * margin
    if any(fill):  # one filled row, broadcast over the rows (a 3-value fill broadcasts slowly)
        padded = np.empty((rows, width, 3), np.uint8)
        padded[:] = np.tile(np.asarray(fill, np.uint8), width).reshape(1, width, 3)
    else:
        padded = np.zeros((rows, width, 3), np.uint8)
    padded[:, margin:margin + length] = image
    padded[:, margin - 1] = image[:, 0]
    padded[:, margin + length] = image[:, -1]
    # Each row's window of length + 1 pixels from its whole shift on: one copy a row.
    line, pixel, channel = padded.strides
    windows = as_strided(padded, (rows, padded.shape[1] - length, length + 1, 3), (line, pixel, pixel, channel),
                         writeable=False)
    taken = windows[np.arange(rows), whole + margin]
    low = taken[:, :-1]
    blended = np.subtract(taken[:, 1:], low, dtype=np.int16).astype(np.float64)
    blended *= fraction  # PIL's BILINEAR: low + (high - low) * d, in float64
    blended += low
    # Outside: 0 <= x + 0.5 + shift < length fails. The pixels within two of either end may read
    # the edge copies, so they are set here; the others read only the fill.
    first = np.clip(np.ceil(-0.5 - shift), 0, length).astype(np.intp)
    end = np.clip(np.ceil(length - 0.5 - shift), first, length).astype(np.intp)
    near = np.concatenate([first[:, None] - np.arange(1, 3), end[:, None] + np.arange(2)], axis=1)
    row = np.repeat(np.arange(rows), near.shape[1])
    near = near.reshape(-1)
    inside = (near >= 0) & (near < length)
    blended[row[inside], near[inside]] = fill
    blended[first >= end] = fill
    return blended.astype(np.uint8)  # truncates, as PIL's (UINT8) cast


def _posterize(image, magnitude):  # ImageOps.posterize(int(magnitude))
    return image & np.uint8(~(2 ** (8 - int(magnitude)) - 1) & 0xFF)


def _solarize(image, magnitude):  # ImageOps.solarize: i < threshold stays, else 255 - i (= i ^ 255)
    threshold = math.ceil(magnitude)  # i < t for a whole i is i < ceil(t)
    if threshold > 255:
        return np.array(image)
    flipped = image >= max(threshold, 0)
    return image ^ np.negative(flipped.view(np.uint8))


def enhance_sharpness(image: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Sharpness(image).enhance(factor)``: a blend with ``ImageFilter.SMOOTH``, to
    PIL's bytes (timm's RandAugment calls it with the factor itself)."""
    return _blend(_smooth(image), image, factor)


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
    """``Image.blend(degenerate, image, alpha)`` pixel by pixel, in float32 as Pillow's C does:
    ``degenerate + alpha * (image - degenerate)``, clipped and truncated. Either side may be a
    float32 array already (it is not changed), and ``degenerate`` a float32 number."""
    low = np.asarray(degenerate, np.float32)
    blended = image.astype(np.float32)  # a copy, also of a float32 array
    blended -= low
    blended *= np.float32(alpha)
    blended += low
    np.clip(blended, 0, 255, out=blended)
    return blended.astype(np.uint8)


def enhance_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Brightness(image).enhance(factor)``: a blend with black, to PIL's bytes."""
    return _blend(np.float32(0.0), image, factor)


def enhance_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Contrast(image).enhance(factor)``: a blend with the grey of the image's mean
    level, to PIL's bytes. PIL's mean is that of its grayscale image (``ImageStat``): the exact
    sum over the pixel count, rounded half up to a whole level."""
    wide, gray = _grayscale(image)
    mean = int(float(gray.sum(dtype=np.float64)) / gray.size + 0.5)  # the sum is exact: whole levels
    return _blend(np.float32(mean), wide, factor)


def enhance_color(image: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Color(image).enhance(factor)``: a blend with the image's own grayscale, to PIL's bytes."""
    wide, gray = _grayscale(image)
    out = np.empty_like(image)
    for channel in range(image.shape[2]):  # a channel at a time: broadcasting over 3 values is slow
        out[..., channel] = _blend(gray, wide[..., channel], factor)
    return out


def autocontrast(image: np.ndarray) -> np.ndarray:
    """``ImageOps.autocontrast(image)``: each channel stretched from its lowest to its highest level,
    to PIL's bytes. With no cutoff PIL's histogram search finds the channel's minimum and maximum,
    and its table is ``int(level * scale + offset)`` in float64, clipped to 0-255."""
    rows = np.ascontiguousarray(image).reshape(image.shape[0], -1)  # reduced over rows first: contiguous
    low = rows.min(axis=0).reshape(-1, image.shape[2]).min(axis=0)
    high = rows.max(axis=0).reshape(-1, image.shape[2]).max(axis=0)
    tables = []
    for lo, hi in zip(low.tolist(), high.tolist()):
        if hi <= lo:  # PIL leaves a flat channel as it is
            tables.append(_LEVELS)
            continue
        scale = 255.0 / (hi - lo)
        stretched = np.arange(256) * scale + (-lo * scale)  # PIL's ix * scale + offset
        tables.append(np.clip(np.trunc(stretched), 0, 255).astype(np.uint8))
    return _look_up(image, tables)


def equalize(image: np.ndarray) -> np.ndarray:
    """``ImageOps.equalize(image)``: each channel's levels spread by its histogram, to PIL's bytes.
    PIL's step is the pixel count less the top level's, over 255, in integers; level ``i`` maps to
    ``(step // 2 + pixels below i) // step``, clipped to 255. A channel with one level, or a step of
    0, stays. PIL's own histogram runs here (it is faster than numpy's); the table, which
    ``ImageOps`` builds level by level in Python, is built in numpy, and looked up in numpy."""
    histogram = np.array(Image.fromarray(np.ascontiguousarray(image)).histogram(), np.int64).reshape(-1, 256)
    top = 255 - np.argmax(histogram[:, ::-1] > 0, axis=1)  # the highest level each channel uses
    step = (histogram.sum(axis=1) - histogram[np.arange(len(histogram)), top]) // 255
    step[(histogram > 0).sum(axis=1) <= 1] = 0
    below = np.cumsum(histogram, axis=1) - histogram  # pixels below each level
    spread = (step[:, None] // 2 + below) // np.maximum(step, 1)[:, None]
    return _look_up(image, np.where(step[:, None] > 0, spread, np.arange(256)).clip(0, 255).astype(np.uint8))


_LEVELS = np.arange(256, dtype=np.uint8)
#: PIL's RGB to L weights (``Convert.c``, ``L24``): ``(19595 R + 38470 G + 7471 B + 0x8000) >> 16``.
_GRAY_WEIGHTS = np.array([19595.0, 38470.0, 7471.0], np.float32)


def _grayscale(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` as float32, and PIL's integer grayscale of it as float32 (``image.convert("L")``).
    Every partial sum of PIL's formula is a whole number under 2**24, so float32 holds it exactly
    in any order of summation, and the shift by 16 is a floor of the product by 2**-16."""
    wide = image.astype(np.float32)
    gray = wide @ _GRAY_WEIGHTS
    gray += np.float32(0x8000)
    gray *= np.float32(1.0 / 65536.0)
    return wide, np.floor(gray, out=gray)


def _look_up(image: np.ndarray, tables: Sequence[np.ndarray]) -> np.ndarray:
    """``image.point(table)`` with one 256-level table per channel."""
    out = np.empty_like(image)
    for channel, table in enumerate(tables):
        out[..., channel] = np.take(table, image[..., channel])
    return out


#: The ops computed here to PIL's bytes, and those to within one level.
EXACT = frozenset({"TranslateX", "TranslateY", "Posterize", "Solarize", "Invert", "Sharpness", "Brightness",
                   "Contrast", "Color", "AutoContrast", "Equalize"})
WITHIN_ONE = frozenset({"ShearX", "ShearY"})

_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    # torchvision's _apply_op translates by int(magnitude)
    "TranslateX": lambda image, magnitude: _translate(image, int(magnitude), 0),
    "TranslateY": lambda image, magnitude: _translate(image, 0, int(magnitude)),
    "ShearX": lambda image, magnitude: _shear(image, magnitude, 1),
    "ShearY": lambda image, magnitude: _shear(image, magnitude, 0),
    "Sharpness": lambda image, magnitude: enhance_sharpness(image, 1.0 + magnitude),  # torchvision adds 1
    "Posterize": _posterize,
    "Solarize": _solarize,
    "Invert": lambda image, magnitude: np.bitwise_not(image),
    # torchvision's adjust_brightness, _contrast and _saturation take 1 + magnitude
    "Brightness": lambda image, magnitude: enhance_brightness(image, 1.0 + magnitude),
    "Contrast": lambda image, magnitude: enhance_contrast(image, 1.0 + magnitude),
    "Color": lambda image, magnitude: enhance_color(image, 1.0 + magnitude),
    "AutoContrast": lambda image, magnitude: autocontrast(image),
    "Equalize": lambda image, magnitude: equalize(image),
}
