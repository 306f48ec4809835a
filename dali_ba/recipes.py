"""Augmentation recipes: the per-replica stage, between the single decode and the stacking.

A recipe turns one decoded image into one normalized replica. ``pipeline.py`` calls it M times on
the same decoded node; every call creates its own random operators (crop window, flip, policy
choice), so each replica draws its own parameters while the JPEG is decoded only once.

Input of every recipe: a DALI node of uint8 images, layout ``HWC``, 3 channels, any size, on the
decoder's device. Output: ``float32`` or ``float16`` images of ``image_size x image_size``,
normalized by the recipe's mean/std, layout ``CHW`` (or ``HWC`` when ``channels_last``), on the
same device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nvidia.dali import fn, types

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

#: torchvision's RandomResizedCrop defaults, the ImageNet training crop.
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
#: Validation resizes the shorter side to image_size / 0.875 (256 for 224) before the center crop.
VAL_CROP_FRACTION = 0.875


@dataclass(frozen=True)
class OutputSpec:
    """What every replica looks like when it leaves the recipe.

    Attributes:
        image_size: Side of the square output, in pixels.
        dtype: ``types.FLOAT`` or ``types.FLOAT16``.
        channels_last: ``HWC`` output instead of ``CHW``.
    """

    image_size: int
    dtype: types.DALIDataType
    channels_last: bool

    @property
    def layout(self) -> str:
        return "HWC" if self.channels_last else "CHW"


def _normalize(images, spec: OutputSpec, mean, std, *, mirror=None, crop=None):
    """Crop (optional), flip (optional), normalize, cast and transpose in one fused DALI op."""
    kwargs = {} if crop is None else {"crop": crop}
    return fn.crop_mirror_normalize(
        images,
        dtype=spec.dtype,
        output_layout=spec.layout,
        mean=[m * 255.0 for m in mean],
        std=[s * 255.0 for s in std],
        mirror=mirror if mirror is not None else 0,
        **kwargs,
    )


def _random_resized_crop(images, spec: OutputSpec):
    return fn.random_resized_crop(
        images,
        size=(spec.image_size, spec.image_size),
        random_area=RRC_SCALE,
        random_aspect_ratio=RRC_RATIO,
        interp_type=types.INTERP_LINEAR,
        antialias=True,
    )


def imagenet(images, spec: OutputSpec):
    """Random-resized crop (scale 0.08-1, ratio 3/4-4/3), horizontal flip, ImageNet mean/std."""
    images = _random_resized_crop(images, spec)
    return _normalize(images, spec, IMAGENET_MEAN, IMAGENET_STD, mirror=fn.random.coin_flip())


def val(images, spec: OutputSpec):
    """Deterministic: resize the shorter side to image_size / 0.875, then center-crop."""
    images = fn.resize(
        images,
        resize_shorter=round(spec.image_size / VAL_CROP_FRACTION),
        interp_type=types.INTERP_LINEAR,
        antialias=True,
    )
    return _normalize(images, spec, IMAGENET_MEAN, IMAGENET_STD, crop=(spec.image_size, spec.image_size))


def cifar(images, spec: OutputSpec):
    """The paper's CIFAR recipe: pad 4 + random crop, horizontal flip, cutout 16 (at 32 px).

    Images are first resized to ``image_size`` (a no-op on CIFAR itself). Padding and cutout scale
    with the image: ``image_size / 8`` and ``image_size / 2`` pixels, i.e. 4 and 16 at 32 px.
    Cutout fills with 0 after normalization (the mean), as DeVries & Taylor's reference does.
    """
    size = spec.image_size
    pad = max(1, round(size / 8))
    cutout = max(1, round(size / 2))
    images = fn.resize(images, size=(size, size), interp_type=types.INTERP_LINEAR, antialias=True)
    offsets = list(range(-pad, pad + 1))
    start = fn.stack(fn.random.choice(offsets), fn.random.choice(offsets))
    images = fn.slice(
        images,
        start=start,
        shape=(size, size),
        axis_names="HW",
        out_of_bounds_policy="pad",
        fill_values=0,
    )
    images = _normalize(images, spec, CIFAR_MEAN, CIFAR_STD, mirror=fn.random.coin_flip())
    # The cutout centre is uniform over the image; the square is clipped at the border.
    centre = fn.random.uniform(range=(0.0, 1.0), shape=(2,))
    return fn.erase(
        images,
        anchor=centre,
        normalized_anchor=True,
        centered_anchor=True,
        shape=(cutout, cutout),
        axis_names="HW",
        fill_value=0.0,
    )


def _auto_aug(policy: Callable):
    def recipe(images, spec: OutputSpec):
        images = _random_resized_crop(images, spec)
        images = policy(images)
        return _normalize(images, spec, IMAGENET_MEAN, IMAGENET_STD, mirror=fn.random.coin_flip())

    recipe.__doc__ = f"ImageNet random-resized crop, then DALI's {policy.__name__}, flip, ImageNet mean/std."
    return recipe


def _rand_augment(images):
    from nvidia.dali.auto_aug import rand_augment

    return rand_augment.rand_augment(images, n=2, m=9)


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
        apply: ``apply(images, spec) -> images``, see the module docstring for the contract.
        random: Whether replicas differ (``False`` only for ``"val"``).
        needs_conditionals: DALI's auto_aug policies need ``enable_conditionals=True``.
    """

    name: str
    apply: Callable
    random: bool = True
    needs_conditionals: bool = False


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("imagenet", imagenet),
        Recipe("cifar", cifar),
        Recipe("randaugment", _auto_aug(_rand_augment), needs_conditionals=True),
        Recipe("trivialaugment", _auto_aug(_trivial_augment), needs_conditionals=True),
        Recipe("autoaugment", _auto_aug(_auto_augment), needs_conditionals=True),
        Recipe("val", val, random=False),
    )
}
