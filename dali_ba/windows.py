"""Crop windows, drawn before decoding: which part of each image the M replicas will use.

Sits between the feed and the decode stage for recipes that start with a random-resized crop
(``imagenet`` and the auto-augment recipes). Each replica's window is drawn as torchvision's
``RandomResizedCrop.get_params`` draws it, from the image's shape alone, which
``fn.peek_image_shape`` reads from the encoded header. The decode stage then decodes only the
union of the M windows (``fn.decoders.image_slice``), and each replica crops its window out of
that union. Decoding once per file stays the rule; decoding only what is used comes on top.

Every node here is a CPU node of int32 ``[y, x]`` / ``[h, w]`` pairs, one per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from nvidia.dali import fn, types
from nvidia.dali import math as dmath

#: torchvision's RandomResizedCrop defaults, the ImageNet training crop.
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
#: Tries before the fallback, as in torchvision's get_params.
RRC_ATTEMPTS = 10


@dataclass(frozen=True)
class Window:
    """One crop window: ``start`` ``[y, x]`` and ``size`` ``[h, w]``, int32 CPU nodes."""

    start: object
    size: object

    def moved_by(self, origin) -> "Window":
        """The same window in the coordinates of a region that starts at ``origin``."""
        return Window(self.start - origin, self.size)


class RandomResizedCropWindows:
    """Windows drawn as ``torchvision.transforms.RandomResizedCrop.get_params`` draws them.

    Area fraction uniform in ``scale`` (:data:`RRC_SCALE` by default), log aspect ratio uniform in log :data:`RRC_RATIO`,
    position uniform, up to :data:`RRC_ATTEMPTS` tries: DALI's generator does this as torchvision
    does. After failed tries both fall back to the largest window of an in-range aspect ratio, but
    they differ there: DALI truncates its long side (``int(h * 4/3)``) and puts it at a random
    place, torchvision rounds (``round(h * 4/3)``) and centres it. The fallback is recognised by
    its shape and replaced by torchvision's.

    What depends only on the image (the two fallbacks) is computed once per image; each
    :meth:`draw` adds only a few operators per replica, which matters at M=8.

    Args:
        shape: int32 CPU node ``[H, W]`` of the images.
        scale: The range of the window's area, as a fraction of the image's (``RandomResizedCrop``'s
            ``scale``; timm's ``--scale``).
    """

    def __init__(self, shape, scale: tuple = RRC_SCALE):
        self.shape = shape
        self.scale = tuple(scale)
        height, width = shape[0], shape[1]
        wide = fn.cast(width * 3 > height * 4, dtype=types.INT32)
        tall = fn.cast(width * 4 < height * 3, dtype=types.INT32)
        # Only images outside the ratio range fall back: to full height (wide) or full width (tall).
        # DALI's fallback shape as one number h * 2**16 + w, or -1 where there is no fallback.
        self._dali_fallback = wide * (height * 65536 + height * 4 // 3) + tall * ((width * 4 // 3) * 65536 + width) - (
            1 - wide - tall
        )
        self._size = fn.stack(  # torchvision's: round(x * 4/3) is (8x + 3) // 6 in integers
            wide * height + tall * ((width * 8 + 3) // 6), wide * ((height * 8 + 3) // 6) + tall * width
        )
        self._start = (shape - self._size) // 2

    def draw(self) -> Window:
        """One more window per image, drawn independently of the others."""
        start, size = fn.random_crop_generator(
            self.shape, random_area=self.scale, random_aspect_ratio=RRC_RATIO, num_attempts=RRC_ATTEMPTS
        )
        start, size = fn.cast(start, dtype=types.INT32), fn.cast(size, dtype=types.INT32)
        # A successful try of exactly DALI's fallback shape is rare; it is then treated as one.
        fallback = size[0] * 65536 + size[1] == self._dali_fallback
        return Window(fallback * self._start + (1 - fallback) * start, fallback * self._size + (1 - fallback) * size)


def union(windows: list[Window], shape, output_size: int) -> Window:
    """The region to decode: the smallest window that holds all of ``windows``, plus a margin.

    Resizing a window with antialiasing reads pixels up to one input-pixels-per-output-pixel
    beyond its edge (the filter's support), so the region extends that far (and 1 more) on every
    side, within the image: each replica is then what it would be from the whole image.

    Args:
        windows: The replicas' windows.
        shape: int32 CPU node ``[H, W]`` of the image.
        output_size: Side of the resized replicas.
    """
    start, end = windows[0].start, windows[0].start + windows[0].size
    for window in windows[1:]:
        start = dmath.min(start, window.start)
        end = dmath.max(end, window.start + window.size)
    margin = (end - start) // output_size + 2
    start = dmath.max(start - margin, 0)
    end = dmath.min(end + margin, shape)
    return Window(start, end - start)


def image_shape(encoded):
    """``[H, W]`` int32 CPU node of each encoded image, read from its header (orientation applied)."""
    return fn.peek_image_shape(encoded, dtype=types.INT32)[0:2]
