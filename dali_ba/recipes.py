"""Augmentation recipes: the per-replica stage, between the single decode and the stacking.

A recipe turns one decoded image into one augmented replica. ``replicate.py`` calls it M times on
the same decoded node; every call creates its own random operators (crop window, flip, policy
choice), so each replica draws its own parameters while the JPEG is decoded only once.

Recipes work in uint8: input is a DALI node of uint8 images, layout ``HWC``, 3 channels, any size,
on the decoder's device; output is uint8 ``HWC`` of ``image_size x image_size`` on the same device.
Normalizing with the recipe's ``mean``/``std``, casting and transposing happen once for all M
replicas in the replicate stage, so the float image is written once, not once per replica and
again when stacking.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Callable

from nvidia.dali import fn, types
from nvidia.dali import math as dmath

from . import timm_graph
from .timm_augment import AUTO_POLICIES, auto_policy, is_rand_augment, is_timm_recipe, parse, parse_auto, timm_fill
from .windows import RRC_SCALE, Window

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

#: torchvision's interpolation names and DALI's filters for them.
INTERPOLATION = {"bilinear": types.INTERP_LINEAR, "bicubic": types.INTERP_CUBIC, "nearest": types.INTERP_NN}
#: timm's ``--train-interpolation random``: bilinear or bicubic, drawn for each replica (training only).
RANDOM = "random"
RANDOM_CHOICES = ("bilinear", "bicubic")

#: Validation resizes the shorter side to image_size / 0.875 (256 for 224) before the center crop,
#: unless ``resize_size`` says otherwise (torchvision's ``--val-resize-size``).
VAL_CROP_FRACTION = 0.875


@dataclass(frozen=True)
class OutputSpec:
    """What every replica looks like when it leaves the pipeline.

    Attributes:
        image_size: Side of the square output, in pixels.
        dtype: ``types.FLOAT`` or ``types.FLOAT16``.
        channels_last: ``HWC`` output instead of ``CHW``.
        resize_size: ``val`` only: the shorter side before the center crop; ``None`` is
            ``round(image_size / 0.875)``.
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``: every resize of the recipe
            (antialiased when shrinking, except nearest), as torchvision's ``--interpolation``;
            ``"random"`` (timm's, training only): bilinear or bicubic, drawn for each replica.
        hflip, vflip: The probabilities of a horizontal and a vertical flip of each replica
            (timm's ``--hflip``, ``--vflip``; torchvision's recipes flip horizontally at 0.5).
    """

    image_size: int
    dtype: types.DALIDataType
    channels_last: bool
    resize_size: int | None = None
    interpolation: str = "bilinear"
    hflip: float = 0.5
    vflip: float = 0.0

    @property
    def interp_type(self):
        """DALI's filter; for ``"random"``, a node drawing bilinear or bicubic for each sample."""
        if self.interpolation == RANDOM:
            choice = fn.random.choice([int(INTERPOLATION[mode]) for mode in RANDOM_CHOICES])
            return fn.cast(choice, dtype=types.INTERP_TYPE)
        return INTERPOLATION[self.interpolation]

    @property
    def layout(self) -> str:
        return "HWC" if self.channels_last else "CHW"


def _flip(images, spec: OutputSpec):
    return _vflip(fn.flip(images, horizontal=fn.random.coin_flip(probability=spec.hflip)), spec)


def _vflip(images, spec: OutputSpec):
    """A vertical flip with probability ``spec.vflip`` (no operator at all where it is 0)."""
    return fn.flip(images, horizontal=0, vertical=fn.random.coin_flip(probability=spec.vflip)) if spec.vflip > 0 else images


def _mirror(spec: OutputSpec):
    """Whether each replica is flipped horizontally, drawn with probability ``spec.hflip`` (int32 0/1)."""
    return fn.random.coin_flip(probability=spec.hflip, dtype=types.INT32)


def _resized_window(images, spec: OutputSpec, window: Window, mirror=None):
    """The window cut out and resized to ``S x S``, as ``RandomResizedCrop`` does with its params.

    ``mirror`` (an int32 0/1 node) flips the output horizontally within the same pass: a region
    whose start lies after its end comes out flipped, so no separate flip writes the image again.
    """
    start, end = window.start, window.start + window.size
    if mirror is not None:
        swap = fn.stack(0, mirror) * window.size  # [0, w] where mirrored: x runs from x1 back to x0
        start, end = start + swap, end - swap
    return fn.resize(
        images,
        size=(spec.image_size, spec.image_size),
        roi_start=fn.cast(start, dtype=types.FLOAT),
        roi_end=fn.cast(end, dtype=types.FLOAT),
        roi_relative=False,
        interp_type=spec.interp_type,
        antialias=True,
    )


def imagenet(images, spec: OutputSpec, window: Window):
    """Random-resized crop (scale 0.08-1, ratio 3/4-4/3) and horizontal flip, in one resampling pass."""
    return _vflip(_resized_window(images, spec, window, mirror=_mirror(spec)), spec)


def val(images, spec: OutputSpec):
    """torchvision's ``Resize(R) + CenterCrop(S)``, to the pixel; ``R`` is ``spec.resize_size``, by
    default ``round(S / 0.875)`` (256 for 224).

    The geometry is torchvision's own arithmetic, done in the pipeline on each image's shape: the
    shorter side becomes R and the longer ``int(R * long / short)`` (truncated), then the crop
    starts at ``int(round((h - S) / 2))`` with Python's round-half-to-even. Downscaling is
    antialiased and upscaling is not, as PIL's filters do both (``spec.interpolation``).
    """
    size = spec.image_size
    shape = images.shape(dtype=types.INT32)  # [H, W, C], on the CPU
    height, width = shape[0], shape[1]
    short = dmath.min(height, width)
    resize = spec.resize_size or round(size / VAL_CROP_FRACTION)
    new_height, new_width = resize * height // short, resize * width // short
    images = fn.resize(
        images,
        size=fn.cast(fn.stack(new_height, new_width), dtype=types.FLOAT),
        interp_type=spec.interp_type,
        antialias=True,
    )
    start = fn.stack(_center_start(new_height, size), _center_start(new_width, size))
    return fn.slice(images, start=start, shape=(size, size), axis_names="HW")


def _center_start(length, crop: int):
    """``int(round((length - crop) / 2.0))`` with Python's round-half-to-even, in DALI integer arithmetic."""
    half = (length - crop) // 2
    odd = (length - crop) - 2 * half
    return half + odd * (half - 2 * (half // 2))  # x.5 rounds up only when ``half`` is odd


def cifar(images, spec: OutputSpec):
    """The paper's CIFAR recipe: pad 4 + random crop, horizontal flip, cutout 16 (at 32 px).

    Images are first resized to ``image_size`` (a no-op on CIFAR itself). Padding and cutout scale
    with the image: ``image_size / 8`` and ``image_size / 2`` pixels, i.e. 4 and 16 at 32 px.
    Cutout fills with the data set mean, which normalizes to 0, as DeVries & Taylor's reference
    (cutout after normalization, fill 0) does; padding is black, as in torchvision's RandomCrop.
    """
    size = spec.image_size
    pad = max(1, round(size / 8))
    cutout = max(1, round(size / 2))
    images = fn.resize(images, size=(size, size), interp_type=spec.interp_type, antialias=True)
    offsets = list(range(-pad, pad + 1))
    start = fn.stack(fn.random.choice(offsets), fn.random.choice(offsets))
    images = fn.slice(images, start=start, shape=(size, size), axis_names="HW", out_of_bounds_policy="pad", fill_values=0)
    images = _flip(images, spec)
    # The cutout centre is uniform over the image; the square is clipped at the border.
    centre = fn.random.uniform(range=(0.0, 1.0), shape=(2,))
    return fn.erase(
        images,
        anchor=centre,
        normalized_anchor=True,
        centered_anchor=True,
        shape=(cutout, cutout),
        axis_names="HW",
        fill_value=[round(m * 255) for m in CIFAR_MEAN],
    )


def _auto_aug(policy: Callable):
    def recipe(images, spec: OutputSpec, window: Window):
        return _flip(policy(_resized_window(images, spec, window)), spec)

    recipe.__doc__ = f"ImageNet random-resized crop, then DALI's {policy.__name__}, then flip."
    return recipe


def _rand_augment(images, magnitude: int = 9):
    from nvidia.dali.auto_aug import rand_augment

    return rand_augment.rand_augment(images, n=2, m=magnitude)


def _trivial_augment(images):
    from nvidia.dali.auto_aug import trivial_augment

    return trivial_augment.trivial_augment_wide(images)


def _auto_augment(images):
    from nvidia.dali.auto_aug import auto_augment

    return auto_augment.auto_augment_image_net(images)


_rand_augment.__name__ = "rand_augment (n=2, m=9)"
_trivial_augment.__name__ = "trivial_augment_wide"
_auto_augment.__name__ = "auto_augment_image_net"


@dataclass(frozen=True)
class Recipe:
    """A named per-replica augmentation.

    Attributes:
        name: The name users pass as ``recipe=``.
        apply: ``apply(images, spec) -> images``, uint8 in and out (see the module docstring);
            ``apply(images, spec, window)`` when ``windowed``.
        mean: Per-channel mean (0-1 scale) that the replicate stage subtracts.
        std: Per-channel standard deviation (0-1 scale) it divides by.
        needs_conditionals: DALI's auto_aug policies need ``enable_conditionals=True``.
        windowed: The recipe starts with a random-resized crop whose window (``windows.py``) is
            drawn per replica before decoding, so only the union of the M windows is decoded.
        resample_in_torch: The recipe is that crop and a flip, then at most a policy of
            ``policies.py``, so on the CPU the replicas can be made by torch's kernels and
            torchvision's ops (``resample.py``) from DALI's decoded regions.
        policy: The torchvision auto-augment policy after the crop and flip (``policies.POLICIES``),
            which the CPU path applies; ``None`` for none. On a GPU ``apply`` runs DALI's.
        magnitude: RandAugment's magnitude (``randaugment`` only).
        crop_scale: The random-resized crop's area range (``windowed`` recipes; ``windows.RRC_SCALE``).
        color_jitter: torchvision's ``ColorJitter`` factors ``(brightness, contrast, saturation)``
            after the crop and flip (timm's ``--color-jitter``; ``imagenet`` only), or ``None``.
        color_jitter_prob: The probability of jittering a replica (``None``: always).
    """

    name: str
    apply: Callable
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    needs_conditionals: bool = False
    windowed: bool = False
    resample_in_torch: bool = False
    policy: str | None = None
    magnitude: int = 9
    crop_scale: tuple = RRC_SCALE
    color_jitter: tuple | None = None
    color_jitter_prob: float | None = None

    def normalized(self, mean: tuple, std: tuple) -> "Recipe":
        """This recipe normalizing with ``mean`` and ``std`` (0-1 scale); timm's RandAugment also
        fills with that mean, as timm's ``transforms_factory`` gives its ops ``img_mean``."""
        if (mean, std) == (self.mean, self.std):
            return self
        apply = _timm_recipe(self.name, mean) if is_timm_recipe(self.name) else self.apply
        return replace(self, mean=tuple(mean), std=tuple(std), apply=apply)

    def with_color_jitter(self, factors: tuple, prob: float | None) -> "Recipe":
        """This recipe with torchvision's ``ColorJitter(*factors)`` after its crop and flip (``imagenet`` only)."""
        if self.name != "imagenet":
            raise ValueError(f"color jitter follows the imagenet recipe's crop and flip, not {self.name!r}")
        crop = self.apply

        def recipe(images, spec: OutputSpec, window: Window):
            return timm_graph.color_jitter(crop(images, spec, window), factors, prob, size=spec.image_size)

        recipe.__doc__ = f"{crop.__doc__} Then ColorJitter{tuple(factors)}" + (f", with probability {prob}." if prob else ".")
        return replace(self, apply=recipe, needs_conditionals=True, color_jitter=tuple(factors), color_jitter_prob=prob)

    def with_magnitude(self, magnitude: int) -> "Recipe":
        """This recipe with RandAugment's magnitude ``magnitude`` (``randaugment`` only; 9 is itself)."""
        if magnitude == 9:
            return self
        if self.name != "randaugment":
            raise ValueError(f"a magnitude applies to the randaugment recipe only, not {self.name!r}")
        policy = functools.partial(_rand_augment, magnitude=magnitude)
        policy.__name__ = f"rand_augment (n=2, m={magnitude})"
        return replace(self, apply=_auto_aug(policy), magnitude=magnitude)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("imagenet", imagenet, windowed=True, resample_in_torch=True),
        Recipe("cifar", cifar, mean=CIFAR_MEAN, std=CIFAR_STD),
        Recipe("randaugment", _auto_aug(_rand_augment), needs_conditionals=True, windowed=True, resample_in_torch=True,
               policy="randaugment"),
        Recipe("trivialaugment", _auto_aug(_trivial_augment), needs_conditionals=True, windowed=True, resample_in_torch=True,
               policy="trivialaugment"),
        Recipe("autoaugment", _auto_aug(_auto_augment), needs_conditionals=True, windowed=True, resample_in_torch=True,
               policy="autoaugment"),
        Recipe("val", val),
    )
}


def _timm_recipe(name: str, mean: tuple):
    """timm's RandAugment or AutoAugment ``name``: the crop and flip, then timm's ops (``timm_graph``),
    filling with ``mean``."""
    fill = timm_fill(mean)
    if is_rand_augment(name):
        config = parse(name)
        augment = functools.partial(timm_graph.rand_augment, config=config)
    else:
        config = parse_auto(name)

        def augment(replicas, **options):  # timm's policy table is read when the pipeline is built
            return timm_graph.auto_augment(replicas, auto_policy(config.policy), config.magnitude_std, **options)

    def recipe(images, spec: OutputSpec, window: Window):
        replicas = _vflip(_resized_window(images, spec, window, mirror=_mirror(spec)), spec)  # timm: crop, hflip, vflip, policy
        return augment(replicas, fill=fill, interpolation=spec.interpolation, size=spec.image_size)

    recipe.__doc__ = f"timm's {name}: the random-resized crop and flip, then timm's ops in DALI."
    return recipe


def recipe_named(name: str) -> Recipe:
    """The recipe users call ``name``: one of ``RECIPES``, timm's RandAugment written in its
    grammar (``"rand-m9-mstd0.5-inc1"``) or one of timm's AutoAugment policies (``"original"``,
    ``"v0r-mstd0.5"``, ...): the crop and flip, then timm's ops (``timm_augment``'s on the CPU
    path, ``timm_graph``'s in DALI).

    Raises:
        ValueError: naming ``recipe`` and what it can be.
    """
    if not isinstance(name, str):
        raise ValueError(f"recipe must be a str, but got {name!r}")
    if name in RECIPES:
        return RECIPES[name]
    if is_timm_recipe(name):
        parse(name) if is_rand_augment(name) else parse_auto(name)  # their errors name the recipe and the section
        return Recipe(name, _timm_recipe(name, IMAGENET_MEAN), needs_conditionals=True, windowed=True,
                      resample_in_torch=True, policy=name)
    raise ValueError(f"recipe must be one of {', '.join(map(repr, RECIPES))}, or timm's RandAugment "
                     f"('rand-m9-mstd0.5-inc1') or AutoAugment ({', '.join(AUTO_POLICIES)}), but got {name!r}")
