"""Loader options, validated once: the keyword arguments of every loader and the CLI flags.

Two shapes, as torchvision's ``presets.py`` has a train and an eval class: :class:`TrainOptions`
(batch augmentation: M replicas, a recipe, shuffled epochs, erasing, shorter epochs, ...) and
:class:`EvalOptions` (every sample once, in order, the deterministic ``val`` recipe). Both share
:class:`ReadOptions`, how the data is read, decoded and handed over. An option that means nothing
to evaluation cannot reach a val loader, because :class:`EvalOptions` has no such field:
integrations build the val side with :meth:`TrainOptions.eval_options`, which copies only the
shared fields. :class:`LoaderConfig` is every field at once, what a loader runs on (its keyword
arguments, ``recipe="val"`` included, as in dali-ba 0.1).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

import torch

from .recipes import INTERPOLATION, RANDOM, RECIPES, recipe_named
from .timm_augment import is_timm_recipe
from .windows import RRC_SCALE

DTYPES = {"float32": torch.float32, "float16": torch.float16}
ON_ERROR = ("raise", "skip")
#: Where the CPU path makes the replicas; "auto" is "torch" where it applies, else "dali".
RESAMPLE = ("auto", "dali", "torch")
#: Region decoding: "auto" (where it works: see decode_probe.py), always, or never.
ROI_DECODE = ("auto", True, False)


def _check_positive_int(name: str, value, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, but got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, but got {value}")


def resolve_dtype(dtype) -> torch.dtype:
    """Maps ``torch.float32`` / ``"float32"`` / ``torch.float16`` / ``"float16"`` to a torch dtype."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if dtype in DTYPES.values():
        return dtype
    raise ValueError(f"dtype must be one of torch.float32, torch.float16 (or their names), but got {dtype!r}")


def resolve_device(device: str) -> torch.device:
    """Maps ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` to the device the loader runs on.

    ``"auto"`` picks the current CUDA device when one is available, otherwise the CPU; under
    torchrun the current device is the one the training script set with ``torch.cuda.set_device``.
    """
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', but got {device!r}")
    name = str(device)
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', but got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} asks for CUDA, but torch.cuda.is_available() is False; use device='cpu'")
        index = torch.cuda.current_device() if resolved.index is None else resolved.index
        if index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}, but only {torch.cuda.device_count()} CUDA device(s) are visible")
        resolved = torch.device("cuda", index)
    return resolved


def default_num_threads(device: torch.device) -> int:
    """DALI CPU threads: every core this process may use, shared among the node's GPU ranks."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu":
        return cores
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, min(8, cores // max(1, local_ranks)))


@dataclass(frozen=True, kw_only=True)
class ReadOptions:
    """What every loader takes, for training or evaluation: how the data is read, decoded and handed over.

    See ``BatchAugmentLoader`` for each field.
    """

    batch_size: int = 256
    image_size: int = 224
    interpolation: str = "bilinear"
    device: str = "auto"
    dtype: object = torch.float32
    channels_last: bool = False
    num_threads: int | None = None
    shard_id: int | None = None
    num_shards: int | None = None
    on_error: str = "raise"
    prefetch: int = 2
    read_threads: int | None = None
    read_ahead: int = 2
    mean: tuple | None = None
    std: tuple | None = None

    def __post_init__(self):
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("image_size", self.image_size)
        _check_positive_int("prefetch", self.prefetch)
        if self.read_threads is not None:
            _check_positive_int("read_threads", self.read_threads)
        _check_positive_int("read_ahead", self.read_ahead)
        if self.num_threads is not None:
            _check_positive_int("num_threads", self.num_threads)
        if self.interpolation not in INTERPOLATION and not (self.interpolation == RANDOM and self._trains()):
            raise ValueError(f"interpolation must be one of {', '.join(map(repr, INTERPOLATION))}"
                             f"{self._random_note()}, but got {self.interpolation!r}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be 'raise' or 'skip', but got {self.on_error!r}")
        object.__setattr__(self, "dtype", resolve_dtype(self.dtype))
        for name in ("mean", "std"):
            object.__setattr__(self, name, _channel_values(name, getattr(self, name)))
        if (self.shard_id is None) != (self.num_shards is None):
            raise ValueError(
                f"shard_id and num_shards go together: set both or neither, but got "
                f"shard_id={self.shard_id!r}, num_shards={self.num_shards!r}"
            )
        if self.num_shards is not None:
            _check_positive_int("num_shards", self.num_shards)
            _check_positive_int("shard_id", self.shard_id, minimum=0)
            if self.shard_id >= self.num_shards:
                raise ValueError(f"shard_id must be < num_shards={self.num_shards}, but got {self.shard_id}")
        # Resolving the device here makes a bad one fail at construction, before any file is read.
        resolve_device(self.device)

    def _trains(self) -> bool:
        return False

    def _random_note(self) -> str:
        return " (or 'random', timm's training filter, in training loaders)"

    def read_options(self) -> dict:
        """The shared fields, as keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(ReadOptions)}


@dataclass(frozen=True, kw_only=True)
class EvalOptions(ReadOptions):
    """An evaluation loader: the ``val`` recipe (torchvision's ``Resize`` + ``CenterCrop``), one
    replica, in order, every sample exactly once (no shuffling, no dropped or padded samples).

    It takes the shared :class:`ReadOptions` and ``resize_size`` (the shorter side before the
    center crop; ``None`` is ``round(image_size / 0.875)``), nothing else.
    """

    resize_size: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.resize_size is not None:
            _check_resize(self.resize_size, self.image_size)

    def loader_options(self) -> dict:
        """The keyword arguments of a loader that evaluates this way."""
        return dict(self.read_options(), resize_size=self.resize_size, recipe="val", aug_repeats=1, shuffle=False,
                    drop_last=False)


@dataclass(frozen=True, kw_only=True)
class TrainOptions(ReadOptions):
    """A training loader: M replicas of each of B images per step, a training recipe, shuffled epochs.

    See ``BatchAugmentLoader`` for each field; the evaluation recipe ``val`` is :class:`EvalOptions`'.
    """

    aug_repeats: int = 4
    recipe: str = "imagenet"
    shuffle: bool = True
    shuffle_window: int | None = None
    seed: int | None = None
    drop_last: bool = True
    roi_decode: bool | str = "auto"
    resample: str = "auto"
    ra_magnitude: int = 9
    random_erase: float = 0.0
    crop_scale: tuple = RRC_SCALE
    hflip: float = 0.5
    vflip: float = 0.0
    color_jitter: object = 0.0  # a factor for brightness, contrast and saturation, or the three
    color_jitter_prob: float | None = None
    epoch_samples: object = None  # int, None, or (num_samples, num_shards) -> int

    def __post_init__(self):
        super().__post_init__()
        if self.recipe == "val":
            raise ValueError("recipe='val' is the evaluation recipe: build that loader from EvalOptions "
                             "(TrainOptions.eval_options() gives them, with the shared options)")
        self._check_training()

    def _trains(self) -> bool:
        return getattr(self, "recipe", None) != "val"

    def _random_note(self) -> str:
        return " or 'random' (timm's: bilinear or bicubic, drawn for each replica)"

    def _check_training(self) -> None:
        _check_positive_int("aug_repeats", self.aug_repeats)
        if self.shuffle_window is not None:
            _check_positive_int("shuffle_window", self.shuffle_window)
        if self.epoch_samples is not None and not callable(self.epoch_samples):
            _check_positive_int("epoch_samples", self.epoch_samples)
        recipe = recipe_named(self.recipe)  # its error names recipe
        if self.resample not in RESAMPLE:
            raise ValueError(f"resample must be 'auto', 'dali' or 'torch', but got {self.resample!r}")
        if self.resample == "torch" and not recipe.resample_in_torch:
            torch_recipes = ", ".join(name for name, recipe in RECIPES.items() if recipe.resample_in_torch)
            raise ValueError(
                f"resample='torch' makes the replicas of the recipes that start with a random-resized crop "
                f"({torch_recipes}), but recipe={self.recipe!r}; use resample='auto' or 'dali'"
            )
        _check_positive_int("ra_magnitude", self.ra_magnitude, minimum=0)
        if self.ra_magnitude > 30:
            raise ValueError(f"ra_magnitude must be in [0, 30] (RandAugment's magnitude bins), but got {self.ra_magnitude}")
        if self.ra_magnitude != 9 and self.recipe != "randaugment":
            raise ValueError(f"ra_magnitude is the randaugment recipe's magnitude, but recipe={self.recipe!r}; "
                             f"leave ra_magnitude at 9 or use recipe='randaugment'")
        if isinstance(self.random_erase, bool) or not isinstance(self.random_erase, (int, float)) or not 0 <= self.random_erase <= 1:
            raise ValueError(f"random_erase is a probability in [0, 1], but got {self.random_erase!r}")
        if self.random_erase and self.recipe == "val":
            raise ValueError(f"random_erase={self.random_erase} is a training augmentation, but recipe='val' is the "
                             f"deterministic evaluation recipe; leave random_erase at 0")
        if not (isinstance(self.roi_decode, bool) or self.roi_decode == "auto"):
            raise ValueError(f"roi_decode must be 'auto', True or False, but got {self.roi_decode!r}")
        scale = self.crop_scale
        if (not isinstance(scale, (tuple, list)) or len(scale) != 2 or any(isinstance(x, bool) for x in scale)
                or not all(isinstance(x, (int, float)) for x in scale) or not 0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"crop_scale is the random-resized crop's area range (lo, hi) with 0 < lo <= hi <= 1, "
                             f"but got {scale!r}")
        if tuple(scale) != RRC_SCALE and not recipe.windowed:
            raise ValueError(f"crop_scale is the random-resized crop's area range, but recipe={self.recipe!r} has no "
                             f"such crop; leave crop_scale at {RRC_SCALE}")
        object.__setattr__(self, "crop_scale", tuple(float(x) for x in scale))
        for name, default in (("hflip", 0.5), ("vflip", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} is the probability of a flip of each replica, in [0, 1], but got {value!r}")
            if value != default and not recipe.windowed:
                raise ValueError(f"{name} is the crop recipes' flip, but recipe={self.recipe!r} flips as it does; "
                                 f"leave {name} at {default}")
        jitter = self.color_jitter_factors
        if jitter is not None and self.recipe != "imagenet":
            raise ValueError(f"color_jitter follows the imagenet recipe's crop and flip (timm turns it off under --aa), "
                             f"but recipe={self.recipe!r}; leave color_jitter at 0")
        prob = self.color_jitter_prob
        if prob is not None and (isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1):
            raise ValueError(f"color_jitter_prob is a probability in [0, 1] or None, but got {prob!r}")
        if prob is not None and jitter is None:
            raise ValueError(f"color_jitter_prob={prob} is the probability of color_jitter, which is off; set "
                             f"color_jitter or leave color_jitter_prob None")
        if self.interpolation == RANDOM and not (self.recipe == "imagenet" or is_timm_recipe(self.recipe)):
            raise ValueError(f"interpolation='random' is timm's (--train-interpolation random): the imagenet recipe's "
                             f"crop and timm's recipes take it, but recipe={self.recipe!r}; pass 'bilinear' or 'bicubic'")
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
                raise ValueError(f"seed must be None or an int in [0, 2**63), but got {self.seed!r}")

    @property
    def color_jitter_factors(self) -> tuple | None:
        """``color_jitter`` as ``(brightness, contrast, saturation)``, or ``None`` where it is off.

        Raises:
            ValueError: Not a number >= 0 or three of them (a hue, timm's fourth value, is refused).
        """
        value = self.color_jitter
        factors = (value,) * 3 if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        try:
            factors = tuple(float(x) for x in factors)
        except TypeError:
            factors = ()
        if len(factors) == 4 and factors[3] == 0:
            factors = factors[:3]
        if len(factors) != 3 or not all(math.isfinite(x) and x >= 0 for x in factors):
            raise ValueError(f"color_jitter is a factor >= 0 for brightness, contrast and saturation, or three of them "
                             f"(torchvision's ColorJitter; a hue is not offered), but got {value!r}")
        return factors if any(factors) else None

    def loader_options(self) -> dict:
        """The keyword arguments of a loader that trains this way."""
        return {f.name: getattr(self, f.name) for f in fields(TrainOptions)}

    def eval_options(self, **overrides) -> EvalOptions:
        """The :class:`EvalOptions` that share this training's reading options (device, dtype,
        threads, shards, ...), with ``overrides`` (``batch_size``, ``image_size``,
        ``resize_size``, ``interpolation``, ...). Training's own options do not carry over."""
        return EvalOptions(**dict(self.read_options(), **overrides))

    def resolve_resample(self, device: torch.device) -> str:
        """``"dali"`` or ``"torch"``: where this loader on ``device`` makes the replicas.

        Raises:
            ValueError: ``resample="torch"`` on a CUDA device (the torch stage runs on the CPU).
        """
        if self.resample == "torch" and device.type != "cpu":
            raise ValueError(f"resample='torch' runs on the CPU only, but device is {str(device)!r}; use resample='auto' or 'dali'")
        if self.resample == "auto":
            return "torch" if device.type == "cpu" and recipe_named(self.recipe).resample_in_torch else "dali"
        return self.resample

    @property
    def effective_batch_size(self) -> int:
        """Images per step the model sees: ``batch_size * aug_repeats``."""
        return self.batch_size * self.aug_repeats


@dataclass(frozen=True, kw_only=True)
class LoaderConfig(TrainOptions):
    """Every option at once: what a loader runs on, built from its keyword arguments.

    ``recipe="val"`` (with ``resize_size``) makes an evaluation loader here, as in dali-ba 0.1;
    :class:`EvalOptions` says the same without the training fields.
    """

    resize_size: int | None = None

    def __post_init__(self):
        ReadOptions.__post_init__(self)
        self._check_training()
        if self.resize_size is not None:
            if self.recipe != "val":
                raise ValueError(f"resize_size is the val recipe's resize before its center crop, but recipe={self.recipe!r}; "
                                 f"leave resize_size=None")
            _check_resize(self.resize_size, self.image_size)


def _channel_values(name: str, values) -> tuple | None:
    """``mean`` or ``std``: ``None`` (the recipe's), or three numbers on the 0-1 scale, a ``std`` above 0."""
    if values is None:
        return None
    given = values
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values) or (name == "std" and min(values) <= 0):
        raise ValueError(f"{name} must be None or three numbers on the 0-1 scale (one per RGB channel"
                         f"{', each above 0' if name == 'std' else ''}), but got {given!r}")
    return values


def _check_resize(resize_size, image_size: int) -> None:
    _check_positive_int("resize_size", resize_size)
    if resize_size < image_size:
        raise ValueError(f"resize_size={resize_size} is smaller than image_size={image_size}: the center "
                         f"crop would not fit; expected resize_size >= image_size")
