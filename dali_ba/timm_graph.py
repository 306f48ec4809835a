"""timm's augmentations as DALI graphs: the GPU path of timm's recipes and of ``color_jitter``.

On the CPU the replicas get timm's own PIL ops (``timm_augment.py``); on a GPU, DALI runs these
graphs on each replica after its crop and flip:

- :func:`rand_augment` draws what timm's ``RandAugment`` draws, per replica: ``n`` ops chosen
  uniformly with replacement, each applied with probability ``p``, at timm's magnitude (``m``,
  with Gaussian noise ``mstd``, uniform in ``[0, m]`` above 100, clipped to ``[0, mmax]``) and a
  random sign where the op has one; the op set is timm's 15 (the "increasing" variants with
  ``inc1``), with timm's level-to-argument mappings (``timm_augment._arguments``);
- :func:`auto_augment` draws as timm's ``AutoAugment``: a sub-policy, then each op with its
  probability;
- :func:`color_jitter` is torchvision's ``ColorJitter`` on PIL, as timm applies it without ``--aa``.

Each op is written to PIL's arithmetic where DALI can do it, so that it matches timm's PIL op:

- to the pixel (up to float rounding at a level boundary): Invert, Posterize, Solarize,
  SolarizeAdd, AutoContrast, and the blends of Brightness, Color, Contrast and Sharpness
  (PIL's float32 ``Image.blend``, its integer grayscale, its 3x3 smoothing with the border kept);
- the geometric ops (Rotate, ShearX/Y, TranslateX/YRel) with PIL's own inverse matrices (about
  the top-left corner, Rotate about the centre), timm's fill colour and the loader's filter;
  they differ from PIL where the two filters round and at the image's border;
- Equalize is DALI's (OpenCV's formula), which PIL's differs from by a few levels.

``tests/test_timm_graph.py`` measures each op at fixed magnitudes against timm's PIL op.
All images reaching the graph have the replica's square size, so the Sharpness border mask is a
constant. Per-replica parameters are CPU scalars, moved to the GPU where the images are.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from nvidia.dali import fn, types
from nvidia.dali import math as dmath

from .timm_augment import INCREASING, LEVELS, TRANSFORMS, RandConfig

#: Pillow's RGB -> L weights (``L24``: 16-bit fixed point, rounded).
_L_WEIGHTS = (19595, 38470, 7471)


def rand_augment(images, config: RandConfig, *, fill, interpolation: str, size: int):
    """timm's RandAugment (``config``) on a batch of ``size x size`` uint8 HWC replicas.

    Args:
        images: uint8 ``HWC`` replicas, all ``size x size``, on the CPU or the GPU.
        config: The parsed ``rand-...`` recipe.
        fill: timm's fill colour of the geometric ops (the mean, 0-255 per channel).
        interpolation: The loader's filter name; the warps filter bilinearly unless it is
            ``"nearest"`` (DALI's warp has no bicubic filter, so bicubic and timm's ``random`` warp
            bilinearly).
        size: The replicas' side.
    """
    names = INCREASING if config.increasing else TRANSFORMS
    ops = [_OPS[name] for name in names]
    context = _Context(fill=[float(v) for v in fill], interpolation=interpolation, size=size)
    identity = len(ops)
    for _ in range(config.num_ops):
        op = fn.random.uniform(values=list(range(len(ops))), dtype=types.INT32)
        if config.prob < 1.0:  # timm's AugmentOp: skipped when random() > p
            applied = fn.cast(fn.random.coin_flip(probability=config.prob), dtype=types.INT32)
            op = op * applied + identity * (1 - applied)
        level = fn.cast(_magnitude(config), dtype=types.FLOAT64) / LEVELS  # timm's arithmetic is in doubles
        sign = 1.0 - 2.0 * fn.cast(fn.random.coin_flip(probability=0.5), dtype=types.FLOAT64)
        images = _select(ops + [_identity], op, 0, identity, images, level, sign, context)
    return images


class _Context:
    def __init__(self, *, fill, interpolation: str, size):
        # DALI warps with nearest or linear filters only: bicubic (DeiT's) warps bilinear here.
        self.fill, self.size = fill, size
        self.interp_type = types.INTERP_NN if interpolation == "nearest" else types.INTERP_LINEAR
        border = np.zeros((size, size, 1), dtype=np.uint8)
        border[[0, -1], :] = border[:, [0, -1]] = 1
        self.border = border  # Sharpness keeps the 1-pixel border (PIL's filter does not reach it)
        self.ones = np.ones((size, size, 1), dtype=np.uint8)  # which output pixels a warp fills


def auto_augment(images, policy, magnitude_std: float, *, fill, interpolation: str, size: int):
    """timm's AutoAugment (``policy``: its sub-policies, ``timm_augment.auto_policy``) on replicas.

    As timm's ``AutoAugment.__call__``: a sub-policy uniformly, then each of its ops with its
    probability, at its magnitude (Gaussian noise ``magnitude_std``, clipped to ``[0, 10]``) and a
    random sign. The sub-policy's op, probability and magnitude at each position are looked up
    from its index, so each position is one choice among the policy's ops (a graph the size of
    RandAugment's), not one branch per sub-policy. Arguments as :func:`rand_augment`'s.
    """
    context = _Context(fill=[float(v) for v in fill], interpolation=interpolation, size=size)
    names = sorted({name for sub in policy for name, _, _ in sub})
    ops = [_OPS[name] for name in names] + [_identity]
    index = fn.random.uniform(values=list(range(len(policy))), dtype=types.INT32)
    keys = list(range(len(policy)))
    for position in range(max(len(sub) for sub in policy)):
        entries = [sub[position] for sub in policy]

        def column(values, dtype):  # this position's value in each sub-policy, looked up by the index
            return fn.lookup_table(index, keys=keys, values=[float(v) for v in values], dtype=dtype)

        op = column([names.index(name) for name, _, _ in entries], types.INT32)
        applied = fn.cast(fn.random.uniform(range=(0.0, 1.0)) <= column([prob for _, prob, _ in entries], types.FLOAT),
                          dtype=types.INT32)  # AugmentOp: skipped when random() > prob
        op = op * applied + (len(ops) - 1) * (1 - applied)
        magnitude = column([magnitude for _, _, magnitude in entries], types.FLOAT)
        if magnitude_std > 0:
            magnitude = magnitude + fn.random.normal(stddev=float(magnitude_std))
        level = fn.cast(dmath.clamp(magnitude, 0.0, LEVELS), dtype=types.FLOAT64) / LEVELS
        sign = 1.0 - 2.0 * fn.cast(fn.random.coin_flip(probability=0.5), dtype=types.FLOAT64)
        images = _select(ops, op, 0, len(ops) - 1, images, level, sign, context)
    return images


def _magnitude(config: RandConfig):
    """timm's per-call magnitude: ``m``, with noise, clipped to ``[0, mmax]``, as a float per replica."""
    m = float(config.magnitude)
    if config.magnitude_std == math.inf:
        magnitude = fn.random.uniform(range=(0.0, m)) if m > 0 else _constant(0.0)
    elif config.magnitude_std > 0:
        magnitude = fn.random.normal(mean=m, stddev=float(config.magnitude_std))
    else:
        return _constant(min(max(m, 0.0), float(config.magnitude_max or LEVELS)))
    return dmath.clamp(magnitude, 0.0, float(config.magnitude_max or LEVELS))


def _select(ops, index, lo: int, hi: int, *args):
    """``ops[index](*args)``, each replica its own op (DALI's conditionals split the batch)."""
    if lo == hi:
        return ops[lo](*args)
    mid = (lo + hi) // 2
    if index <= mid:
        return _select(ops, index, lo, mid, *args)
    else:
        return _select(ops, index, mid + 1, hi, *args)


# -- helpers --------------------------------------------------------------------------------------


def _on(node, images):
    """A CPU per-replica parameter, on the images' device."""
    return node.gpu() if images.device == "gpu" and getattr(node, "device", None) == "cpu" else node


def _constant(value, dtype=types.FLOAT):
    """A per-replica constant (a DALI node, so that it can be stacked and moved)."""
    return types.Constant(value, dtype=dtype, device="cpu")


def _trunc_int(value):
    """Python's ``int()`` of a non-negative float per replica, as an int32."""
    return fn.cast(dmath.floor(value), dtype=types.INT32)


def _warp(images, matrix, context):
    """PIL's ``Image.transform(AFFINE, matrix)``: ``matrix`` maps output to input coordinates.

    As PIL: an output pixel whose input point lies outside the image gets the fill colour; the
    others are filtered with the image's edge repeated, and truncated to uint8. DALI repeats the
    edge when given no fill; which points lie outside is a nearest-neighbour warp of ones.
    """
    matrix = fn.reshape(matrix, shape=[2, 3])
    size = [context.size, context.size]
    filtered = fn.warp_affine(fn.cast(images, dtype=types.FLOAT), matrix=matrix, inverse_map=True,
                              interp_type=context.interp_type, size=size)
    inside = fn.warp_affine(_on(_constant(context.ones, types.UINT8), images), matrix=matrix, inverse_map=True,
                            fill_value=0.0, interp_type=types.INTERP_NN, size=size)
    fill = _on(_constant(np.array(context.fill, dtype=np.float32).reshape(1, 1, 3)), images)
    inside = fn.cast(inside, dtype=types.FLOAT)
    out = dmath.floor(dmath.clamp(filtered, 0.0, 255.0)) * inside + fill * (1.0 - inside)
    return fn.cast(out, dtype=types.UINT8)


def _matrix(a, b, c, d, e, f):
    """PIL's ``(a, b, c, d, e, f)``, computed in doubles as timm does, as DALI's float32 matrix."""
    return fn.stack(*[_constant(float(x)) if isinstance(x, (int, float)) else fn.cast(x, dtype=types.FLOAT)
                      for x in (a, b, c, d, e, f)])


def _gray(images):
    """PIL's ``convert("L")`` of RGB: ``(R*19595 + G*38470 + B*7471 + 32768) >> 16``, int32 ``HW1``."""
    x = fn.cast(images, dtype=types.INT32)
    r, g, b = (x[:, :, c] for c in range(3))
    gray = (r * _L_WEIGHTS[0] + g * _L_WEIGHTS[1] + b * _L_WEIGHTS[2] + 32768) // 65536
    return fn.expand_dims(gray, axes=[2])


def _blend(degenerate, images, factor):
    """PIL's ``Image.blend(degenerate, image, factor)`` in float32, truncated and clipped to uint8."""
    low = fn.cast(_on(degenerate, images), dtype=types.FLOAT)  # every operand on the images' device
    high = fn.cast(images, dtype=types.FLOAT)
    mixed = low + _on(fn.cast(factor, dtype=types.FLOAT), images) * (high - low)  # PIL's float alpha
    return fn.cast(dmath.floor(dmath.clamp(mixed, 0.0, 255.0)), dtype=types.UINT8)


def _enhance_factor(level, sign, increasing: bool):
    # DALI takes a Python float as a float32 constant, so timm's 0.9, 1.8 and 0.1 are written as
    # ratios of whole numbers, and the doubles round to the float32 that PIL's blend takes.
    if increasing:  # _enhance_increasing_level_to_arg: max(0.1, 1 +- 0.9 level)
        return dmath.max(1 + sign * (level * 9 / 10), 0.1)
    return (level * 18 + 1) / 10  # _enhance_level_to_arg: 1.8 level + 0.1


# -- timm's ops -----------------------------------------------------------------------------------


def _identity(images, level, sign, context):
    return images


def _auto_contrast(images, level, sign, context):
    """PIL's ``autocontrast``: per channel ``int(x * 255 / (hi - lo) - lo * 255 / (hi - lo))``."""
    lo = fn.cast(fn.reductions.min(images, axes=[0, 1], keep_dims=True), dtype=types.FLOAT)
    hi = fn.cast(fn.reductions.max(images, axes=[0, 1], keep_dims=True), dtype=types.FLOAT)
    spread = hi > lo
    scale = 255.0 / dmath.max(hi - lo, 1.0)
    scaled = fn.cast(images, dtype=types.FLOAT) * scale - lo * scale
    out = fn.cast(dmath.floor(dmath.clamp(scaled, 0.0, 255.0)), dtype=types.UINT8)
    return out * spread + images * (spread ^ True)


def _equalize(images, level, sign, context):
    return fn.equalize(images)


def _invert(images, level, sign, context):
    return types.Constant(255, dtype=types.UINT8) - images


def _rotate(images, level, sign, context):
    """PIL's ``rotate(degrees)`` about the centre, its inverse matrix; degrees ``+-30 level``."""
    radians = -(sign * level * 30) / 180 * math.pi  # pi as a float32: a 1e-8 error in the angle
    cos, sin = dmath.cos(radians), dmath.sin(radians)
    centre = context.size / 2.0
    # PIL: (a, b, c, d, e, f) = (cos, sin, 0, -sin, cos, 0), then c, f = transform(-centre) + centre.
    c = cos * -centre + sin * -centre + centre
    f = -sin * -centre + cos * -centre + centre
    return _warp(images, _matrix(cos, sin, c, -sin, cos, f), context)


def _posterize(images, bits):
    """PIL's ``posterize(bits)`` as a mask; 8 bits or more keep the image, 0 keep none (black)."""
    bits = dmath.clamp(bits, 0, 8)
    drop = fn.cast(dmath.pow(2.0, fn.cast(8 - bits, dtype=types.FLOAT)), dtype=types.INT32) - 1
    mask = fn.cast(255 - drop, dtype=types.UINT8)
    return images & _on(mask, images)


def _posterize_level(images, level, sign, context):  # _posterize_level_to_arg: int(4 level)
    return _posterize(images, _trunc_int(level * 4.0))


def _posterize_increasing(images, level, sign, context):  # 4 - int(4 level)
    return _posterize(images, 4 - _trunc_int(level * 4.0))


def _posterize_original(images, level, sign, context):  # AutoAugment's: int(4 level) + 4
    return _posterize(images, _trunc_int(level * 4.0) + 4)


def _solarize(images, threshold):
    """PIL's ``solarize(threshold)``: a value at or above ``threshold`` becomes ``255 - value``."""
    x = fn.cast(images, dtype=types.INT32)
    above = fn.cast(x >= _on(threshold, images), dtype=types.INT32)
    return fn.cast(x + above * (255 - 2 * x), dtype=types.UINT8)


def _solarize_level(images, level, sign, context):  # min(256, int(256 level))
    return _solarize(images, dmath.min(_trunc_int(level * 256.0), 256))


def _solarize_increasing(images, level, sign, context):  # 256 - min(256, int(256 level))
    return _solarize(images, 256 - dmath.min(_trunc_int(level * 256.0), 256))


def _solarize_add(images, level, sign, context):
    """timm's ``solarize_add``: below 128, ``min(255, value + add)``; ``add = min(128, int(110 level))``."""
    add = dmath.min(_trunc_int(level * 110.0), 128)
    x = fn.cast(images, dtype=types.INT32)
    below = fn.cast(x < 128, dtype=types.INT32)
    return fn.cast(dmath.min(x + below * _on(add, images), 255), dtype=types.UINT8)


def _enhance(kind: str, increasing: bool):
    def op(images, level, sign, context):
        return _enhanced(images, kind, _enhance_factor(level, sign, increasing), context)

    op.__name__ = f"_{kind.lower()}{'_increasing' if increasing else ''}"
    return op


def _enhanced(images, kind: str, factor, context):
    """PIL's ``ImageEnhance.<kind>(image).enhance(factor)``: a blend of ``images`` with a degenerate image."""
    if kind == "Brightness":  # degenerate: black
        return _blend(_constant(0, types.UINT8), images, factor)
    if kind == "Color":  # degenerate: the grayscale image, as RGB
        return _blend(_gray(images), images, factor)
    if kind == "Contrast":  # degenerate: the grayscale mean, int(mean + 0.5), everywhere
        mean = fn.reductions.mean(fn.cast(_gray(images), dtype=types.FLOAT), axes=[0, 1, 2], keep_dims=True)
        return _blend(dmath.floor(mean + 0.5), images, factor)
    # Sharpness: degenerate is PIL's SMOOTH filter, (sum of the 3x3 + 4 centre + 6) // 13, border kept.
    kernel = np.ones((3, 3), dtype=np.float32)
    kernel[1, 1] = 5.0
    total = fn.cast(fn.filter(images, _on(_constant(kernel), images), dtype=types.FLOAT),
                    dtype=types.INT32)
    smooth = (total + 6) // 13
    border = _on(_constant(context.border, types.UINT8), images)
    kept = fn.cast(border, dtype=types.INT32)
    degenerate = smooth * (1 - kept) + fn.cast(images, dtype=types.INT32) * kept
    return _blend(degenerate, images, factor)


def _shear_x(images, level, sign, context):  # (1, f, 0, 0, 1, 0), f = +-0.3 level
    return _warp(images, _matrix(1.0, sign * (level * 3 / 10), 0.0, 0.0, 1.0, 0.0), context)


def _shear_y(images, level, sign, context):  # (1, 0, 0, f, 1, 0)
    return _warp(images, _matrix(1.0, 0.0, 0.0, sign * (level * 3 / 10), 1.0, 0.0), context)


def _translate_x_rel(images, level, sign, context):  # (1, 0, pct * width, 0, 1, 0), pct = +-0.45 level
    return _warp(images, _matrix(1.0, 0.0, sign * (level * 9 / 20) * context.size, 0.0, 1.0, 0.0), context)


def _translate_y_rel(images, level, sign, context):  # (1, 0, 0, 0, 1, pct * height)
    return _warp(images, _matrix(1.0, 0.0, 0.0, 0.0, 1.0, sign * (level * 9 / 20) * context.size), context)


_OPS = {
    "AutoContrast": _auto_contrast, "Equalize": _equalize, "Invert": _invert, "Rotate": _rotate,
    "Posterize": _posterize_level, "PosterizeIncreasing": _posterize_increasing, "PosterizeOriginal": _posterize_original,
    "Solarize": _solarize_level, "SolarizeIncreasing": _solarize_increasing, "SolarizeAdd": _solarize_add,
    **{name: _enhance(name, False) for name in ("Color", "Contrast", "Brightness", "Sharpness")},
    **{f"{name}Increasing": _enhance(name, True) for name in ("Color", "Contrast", "Brightness", "Sharpness")},
    "ShearX": _shear_x, "ShearY": _shear_y, "TranslateXRel": _translate_x_rel, "TranslateYRel": _translate_y_rel,
}


#: torchvision's ColorJitter components (``fn_idx`` 0, 1, 2) and the PIL enhancer each one is.
JITTER = (("brightness", "Brightness"), ("contrast", "Contrast"), ("saturation", "Color"))


def color_jitter(images, factors, prob: float | None = None, *, size: int, params: bool = False):
    """torchvision's ``ColorJitter(brightness, contrast, saturation)`` on PIL, as timm applies it.

    Each replica draws a factor for each non-zero component uniformly in ``[max(0, 1 - x), 1 + x]``
    and applies the three PIL enhancers (Brightness, Contrast, Color) in a random order, as
    ``ColorJitter.forward`` does; with ``prob``, the whole of it only with that probability
    (timm's ``--color-jitter-prob``, a ``RandomApply``). The enhancers are PIL's blends, to the
    pixel (see the module docstring).

    Args:
        images: uint8 ``HWC`` replicas, ``size x size``.
        factors: ``(brightness, contrast, saturation)``.
        prob: The probability of jittering a replica; ``None`` is always.
        params: Also return, for tests, each replica's factors ``[3]`` (1 for a component left out)
            and its order's index into :func:`jitter_orders`.
    """
    kinds = [kind for (name, kind), value in zip(JITTER, factors) if value > 0]
    context = _Context(fill=[0.0, 0.0, 0.0], interpolation="bilinear", size=size)
    drawn = {kind: fn.random.uniform(range=[max(0.0, 1.0 - value), 1.0 + value])
             for (_, kind), value in zip(JITTER, factors) if value > 0}
    orders = list(itertools.permutations(kinds))
    order = fn.random.uniform(values=list(range(len(orders))), dtype=types.INT32)
    if prob is not None:
        applied = fn.cast(fn.random.coin_flip(probability=prob), dtype=types.INT32)
        order = order * applied + len(orders) * (1 - applied)

    def jitter(sequence):
        def apply(images, *factors):
            for kind in sequence:
                images = _enhanced(images, kind, factors[kinds.index(kind)], context)
            return images
        return apply

    branches = [jitter(sequence) for sequence in orders] + [lambda images, *factors: images]
    out = _select(branches, order, 0, len(orders), images, *[drawn[kind] for kind in kinds])
    if not params:
        return out
    ones = _constant(1.0)
    return out, fn.stack(*[drawn.get(kind, ones) for _, kind in JITTER]), order


def jitter_orders(factors) -> list[tuple[str, ...]]:
    """The orders :func:`color_jitter` draws from, by index (then, at ``len``, none applied)."""
    return list(itertools.permutations([kind for (_, kind), value in zip(JITTER, factors) if value > 0]))


def apply_op(images, name: str, magnitude: float, sign: float, *, fill, interpolation: str, size: int):
    """One of timm's ops at a fixed ``magnitude`` (0-10) and ``sign``: for the op-by-op tests."""
    context = _Context(fill=[float(v) for v in fill], interpolation=interpolation, size=size)
    level = fn.cast(_constant(float(magnitude)), dtype=types.FLOAT64) / LEVELS  # as rand_augment computes it
    return _OPS[name](images, level, fn.cast(_constant(float(sign)), dtype=types.FLOAT64), context)
