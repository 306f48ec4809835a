"""timm's RandAugment on the CPU path: ``recipe="rand-m9-mstd0.5-inc1"``, drawn as timm draws it.

Part of the resample stage (``resample.py``), beside ``policies.py``: a replica of a recipe named
in timm's RandAugment grammar (``timm.data.rand_augment_transform``, the ``--aa`` of timm's
``train.py``) is cut out, resized and flipped by torch, then gets timm's ops here. The draws
follow timm 1.0's ``RandAugment`` and ``AugmentOp``:

- ``n`` ops a replica (default 2), chosen uniformly with replacement from timm's 15
  (``_RAND_TRANSFORMS``; ``inc1``: the "increasing" variants of Posterize, Solarize, Color,
  Contrast, Brightness and Sharpness);
- each applied with probability ``p`` (default 0.5);
- its magnitude ``m`` (default 10) with Gaussian noise of ``mstd`` (uniform on ``[0, m]`` above
  100), clipped to ``[0, mmax]`` (default 10), then mapped to the op's arguments as timm maps
  them, the sign of the signed ones by a coin.

The ops are timm's own functions on PIL (``timm.data.auto_augment.NAME_TO_OP``), with the fill
colour timm's ``transforms_factory`` gives them (the recipe's mean, 0-255) and the loader's
``interpolation``. Only Rotate (and the geometric ops with a filter other than bilinear) stays
with PIL: the colour and histogram ops skip it (``pil_ops``, to PIL's bytes), and so do the shears
and relative translations with the bilinear filter (``pil_ops.shift_lines``, to within one level).
One departure, named: timm 1.0.31's ``PosterizeIncreasing`` at the clipped magnitude 10 asks
Pillow for 0 bits, which Pillow 13 refuses; here 0 bits keep no bit (black), as Pillow before 13
gave. The draws come from the resample stage's seeded generator, so the same seed gives the same
replicas. On DALI's path (a GPU) the same recipe runs ``timm_graph.py``'s DALI ops.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from . import pil_ops

#: timm's RandAugment ops (``_RAND_TRANSFORMS``), and the ``inc1`` set (``_RAND_INCREASING_TRANSFORMS``).
TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
              "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
INCREASING = tuple(f"{op}Increasing" if op in ("Posterize", "Solarize", "Color", "Contrast", "Brightness", "Sharpness")
                   else op for op in TRANSFORMS)
#: Every op of timm's RandAugment sets and AutoAugment policies (these add PosterizeOriginal).
ALL_OPS = tuple(sorted(set(TRANSFORMS) | set(INCREASING) | {"PosterizeOriginal"}))
#: timm's ops that move each line along itself (``pil_ops.shift_lines``: to within one level).
LINE_SHIFTS = frozenset({"ShearX", "ShearY", "TranslateXRel", "TranslateYRel"})
#: timm's enhancer ops (and their ``...Increasing`` forms) in ``pil_ops``, to PIL's bytes.
_ENHANCERS = {"Sharpness": pil_ops.enhance_sharpness, "Brightness": pil_ops.enhance_brightness,
              "Color": pil_ops.enhance_color, "Contrast": pil_ops.enhance_contrast}
#: timm's level scale (``_LEVEL_DENOM``): a magnitude of 10 is an op's strongest.
LEVELS = 10.0
#: An op and its arguments, as timm's op function takes them; with ``interpolation="random"`` a
#: third item, the filter drawn for this op (timm draws bilinear or bicubic at every call).
Op = tuple


#: timm's AutoAugment policies (``auto_augment_policy``): the paper's ImageNet policy and the TPU
#: EfficientNet one, each with the variant whose Posterize keeps fewer bits as the magnitude grows.
AUTO_POLICIES = ("original", "originalr", "v0", "v0r")


def is_rand_augment(recipe: str) -> bool:
    """Whether ``recipe`` is written in timm's RandAugment grammar (``rand-...``)."""
    return isinstance(recipe, str) and (recipe == "rand" or recipe.startswith("rand-"))


def is_auto_augment(recipe: str) -> bool:
    """Whether ``recipe`` is one of timm's AutoAugment policies (``original``, ``v0-mstd0.5``, ...)."""
    return isinstance(recipe, str) and recipe.split("-")[0] in AUTO_POLICIES


def is_timm_recipe(recipe: str) -> bool:
    """Whether ``recipe`` is timm's: its RandAugment grammar or one of its AutoAugment policies."""
    return is_rand_augment(recipe) or is_auto_augment(recipe)


@dataclass(frozen=True)
class AutoConfig:
    """A timm AutoAugment string's settings: the policy and the magnitude noise (``mstd``)."""

    policy: str
    magnitude_std: float = 0.0


def parse_auto(recipe: str) -> AutoConfig:
    """``{original|originalr|v0|v0r}[-mstd{S}]`` as timm's ``auto_augment_transform`` reads it.

    Raises:
        ValueError: naming ``recipe`` and the section timm would not take.
    """
    policy, *sections = recipe.split("-")
    if policy not in AUTO_POLICIES:
        raise ValueError(f"recipe {recipe!r}: timm's AutoAugment policies are {', '.join(AUTO_POLICIES)} "
                         f"('3a' turns timm's color jitter on and is not offered)")
    std = 0.0
    for section in sections:
        match = re.fullmatch(r"(\D*)(\d.*)", section)
        if match is None:
            continue  # timm skips a section without a number
        key, value = match.groups()
        if key != "mstd" or not re.fullmatch(r"\d+(\.\d*)?", value):
            raise ValueError(f"recipe {recipe!r}: section {section!r} is not timm's AutoAugment setting mstd<float>")
        std = float(value)
    return AutoConfig(policy, std)


def auto_policy(name: str) -> list[list[tuple[str, float, int]]]:
    """timm's sub-policies of AutoAugment ``name``: ``[(op, probability, magnitude), ...]`` each.

    Read from timm itself (``timm.data.auto_augment.auto_augment_policy``), so they are timm's.

    Raises:
        ImportError: timm is not installed.
    """
    try:
        from timm.data.auto_augment import auto_augment_policy
    except ImportError as error:
        raise ImportError(f"recipe {name!r} is timm's AutoAugment policy, read from timm, which is not installed: "
                          f"pip install 'dali-ba[timm]'") from error
    return [[(op.name, float(op.prob), op.magnitude) for op in sub] for sub in auto_augment_policy(name, {"img_mean": (0, 0, 0)})]


@dataclass(frozen=True)
class RandConfig:
    """A ``rand-...`` string's settings, with timm's defaults."""

    magnitude: int = 10
    num_ops: int = 2
    magnitude_std: float = 0.0
    magnitude_max: float = LEVELS
    increasing: bool = False
    prob: float = 0.5


def parse(recipe: str) -> RandConfig:
    """``rand-m{M}-n{N}-mstd{S}-mmax{X}-inc{0|1}-p{P}`` as timm's ``rand_augment_transform`` reads it.

    Raises:
        ValueError: naming ``recipe`` and the section it cannot take: an unknown key, a value that
            is not a number, or timm's ``t...`` transform sets (not offered here).
    """
    sections = recipe.split("-")
    if sections[0] != "rand":
        raise ValueError(f"recipe {recipe!r} is not timm's RandAugment grammar (rand-m9-mstd0.5-inc1)")
    values = {}
    for section in sections[1:]:
        if section.startswith("t"):
            raise ValueError(f"recipe {recipe!r}: timm's transform sets ({section!r}) are not offered; "
                             f"leave the section out for timm's default 15 ops")
        match = re.fullmatch(r"(\D*)(\d.*)", section)
        if match is None:
            continue  # timm skips a section without a number
        key, value = match.groups()
        pattern = r"\d+" if key in ("m", "n", "mmax", "inc") else r"\d+(\.\d*)?"
        if key not in ("m", "n", "mstd", "mmax", "inc", "p") or not re.fullmatch(pattern, value):
            raise ValueError(f"recipe {recipe!r}: section {section!r} is not one of timm's RandAugment settings "
                             f"m<int>, n<int>, mstd<float>, mmax<int>, inc<0|1>, p<float>")
        values[key] = float(value)
    config = RandConfig(
        magnitude=int(values.get("m", 10)), num_ops=int(values.get("n", 2)),
        magnitude_std=math.inf if values.get("mstd", 0.0) > 100 else values.get("mstd", 0.0),
        magnitude_max=int(values["mmax"]) if "mmax" in values else LEVELS,
        increasing=bool(int(values.get("inc", 0))), prob=values.get("p", 0.5),
    )
    if config.num_ops < 1 or config.magnitude < 0 or config.magnitude_std < 0 or not 0 <= config.prob <= 1:
        raise ValueError(f"recipe {recipe!r}: needs n >= 1, m >= 0, mstd >= 0 and p in [0, 1]")
    return config


def timm_fill(mean: Sequence[float]) -> tuple[int, ...]:
    """timm's fill colour of its geometric ops: the mean (0-1) on 0-255 (``transforms_factory``'s ``img_mean``)."""
    return tuple(min(255, round(255 * x)) for x in mean)


class _TimmOps:
    """What timm's RandAugment and AutoAugment share on the CPU path: timm's ops, applied to replicas
    with the interface of ``policies.Policy``; a subclass draws them (``_draw_one``).

    Args:
        mean: The recipe's per-channel mean (0-1): timm fills with it, rounded to 0-255.
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``: the geometric ops' filter, as
            timm's ``train.py`` passes its ``--train-interpolation``; ``"random"``: bilinear or
            bicubic drawn for each op, as timm's ops draw when ``train.py`` passes them none.
    """

    def __init__(self, recipe: str, *, mean: Sequence[float], interpolation: str = "bilinear"):
        self.name = recipe
        self._fill = timm_fill(mean)
        self._interpolation = interpolation
        self._functions = None  # timm's op functions, imported on first use

    def draw(self, rng: np.random.Generator, count: int) -> list[list[Op]]:
        """The ops of ``count`` replicas, each a list of ``(op, arguments)`` in the order to apply."""
        return [self._draw_one(rng) for _ in range(count)]

    def _draw_one(self, rng: np.random.Generator) -> list[Op]:
        raise NotImplementedError

    def _op(self, name: str, magnitude: float, rng: np.random.Generator) -> Op:
        """Op ``name`` at ``magnitude``: its arguments, and with ``"random"`` its filter, drawn as timm draws them."""
        arguments = _arguments(name, magnitude, rng)
        if self._interpolation == "random":  # timm's _interpolation: random.choice((BILINEAR, BICUBIC))
            return name, arguments, ("bilinear", "bicubic")[rng.integers(2)]
        return name, arguments

    def apply(self, image: np.ndarray, ops: Sequence[Op]) -> np.ndarray:
        """``image`` (uint8 ``HWC``) with ``ops`` applied by timm's op functions (or ``pil_ops``'s
        copies of them), as a new uint8 ``HWC`` array (``image`` itself where no op changes it)."""
        return pil_ops.chain(image, ops, lambda array, op: self._skip_pil(array, *op), self._in_pil)

    def _in_pil(self, picture: Image.Image, op: Op) -> Image.Image:
        name, arguments, *drawn = op
        resample = _RESAMPLE[drawn[0] if drawn else self._interpolation]
        return self._timm_functions()[name](picture, *arguments, fillcolor=self._fill, resample=resample)

    def _skip_pil(self, image: np.ndarray, name: str, arguments: tuple, *drawn: str) -> np.ndarray | None:
        """The ops ``pil_ops`` computes: to PIL's bytes, or the line shifts (timm's shears and
        relative translations, bilinear) to within one level; ``None`` for the others."""
        base = name.removesuffix("Increasing")
        if name.startswith("Posterize"):  # timm: 8 bits or more keep the image
            (bits,) = arguments
            if bits >= 8:
                return image
            return np.zeros_like(image) if bits <= 0 else pil_ops.apply(image, "Posterize", bits)
        if base == "Solarize":
            return pil_ops.apply(image, "Solarize", arguments[0])
        if name == "Invert":
            return pil_ops.apply(image, "Invert", 0.0)
        if base in _ENHANCERS:  # timm's factor is the enhancer's own
            return _ENHANCERS[base](image, arguments[0])
        if name == "AutoContrast":
            return pil_ops.autocontrast(image)
        if name == "Equalize":
            return pil_ops.equalize(image)
        if name in LINE_SHIFTS and (drawn[0] if drawn else self._interpolation) == "bilinear":
            (value,) = arguments
            h, w = image.shape[:2]
            axis, coefficient, offset = {  # timm's matrices: (1, f, 0, 0, 1, 0), (1, 0, 0, f, 1, 0), ...
                "ShearX": (1, value, 0.0), "ShearY": (0, value, 0.0),
                "TranslateXRel": (1, 0.0, value * w), "TranslateYRel": (0, 0.0, value * h),
            }[name]
            return pil_ops.shift_lines(image, axis, coefficient, offset, fill=self._fill)
        return None

    def _timm_functions(self) -> dict:
        if self._functions is None:
            try:
                from timm.data.auto_augment import NAME_TO_OP
            except ImportError as error:
                raise ImportError(f"recipe {self.name!r} applies timm's own RandAugment ops, and timm is not "
                                  f"installed: pip install 'dali-ba[timm]'") from error
            self._functions = NAME_TO_OP
        return self._functions


class TimmRandAugment(_TimmOps):
    """timm's RandAugment (``rand-...``) for replicas: its draws, and timm's ops (:class:`_TimmOps`).

    Args:
        recipe: The ``rand-...`` string.
        mean, interpolation: As :class:`_TimmOps`.
    """

    def __init__(self, recipe: str, *, mean: Sequence[float], interpolation: str = "bilinear"):
        super().__init__(recipe, mean=mean, interpolation=interpolation)
        self.config = parse(recipe)
        self._ops = INCREASING if self.config.increasing else TRANSFORMS

    def _draw_one(self, rng: np.random.Generator) -> list[Op]:
        config, ops = self.config, []
        for index in rng.integers(len(self._ops), size=config.num_ops):  # RandAugment.__call__
            if config.prob < 1.0 and rng.random() > config.prob:  # AugmentOp.__call__
                continue
            magnitude = float(config.magnitude)
            if config.magnitude_std == math.inf:
                magnitude = rng.uniform(0, magnitude)
            elif config.magnitude_std > 0:
                magnitude = rng.normal(magnitude, config.magnitude_std)
            magnitude = max(0.0, min(magnitude, config.magnitude_max or LEVELS))
            ops.append(self._op(self._ops[index], magnitude, rng))
        return ops


class TimmAutoAugment(_TimmOps):
    """timm's AutoAugment (``original``, ``originalr``, ``v0``, ``v0r``; ``-mstd``) for replicas.

    The draws follow timm's ``AutoAugment.__call__``: a sub-policy uniformly, then each of its ops
    with its probability, at its magnitude (with Gaussian noise ``mstd``, clipped to ``[0, 10]``)
    and a random sign; the ops are :class:`_TimmOps`' (timm's own on PIL, or ``pil_ops``').

    Args:
        recipe: The policy string.
        mean, interpolation: As :class:`_TimmOps`.
    """

    def __init__(self, recipe: str, *, mean: Sequence[float], interpolation: str = "bilinear"):
        super().__init__(recipe, mean=mean, interpolation=interpolation)
        self.config = parse_auto(recipe)
        self._policy = auto_policy(self.config.policy)

    def _draw_one(self, rng: np.random.Generator) -> list[Op]:
        ops = []
        for name, prob, magnitude in self._policy[rng.integers(len(self._policy))]:  # AutoAugment.__call__
            if prob < 1.0 and rng.random() > prob:  # AugmentOp.__call__
                continue
            if self.config.magnitude_std > 0:
                magnitude = rng.normal(magnitude, self.config.magnitude_std)
            magnitude = max(0.0, min(float(magnitude), LEVELS))
            ops.append(self._op(name, magnitude, rng))
        return ops


_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def _arguments(name: str, magnitude: float, rng: np.random.Generator) -> tuple:
    """timm's ``LEVEL_TO_ARG[name](magnitude)``: the op's arguments, signed ones by a coin."""
    level = magnitude / LEVELS
    base = name.removesuffix("Increasing")

    def signed(value: float) -> float:  # timm's _randomly_negate
        return -value if rng.random() > 0.5 else value

    if name in ("AutoContrast", "Equalize", "Invert"):
        return ()
    if name == "Rotate":
        return (signed(level * 30.0),)
    if name in ("ShearX", "ShearY"):
        return (signed(level * 0.3),)
    if name in ("TranslateXRel", "TranslateYRel"):
        return (signed(level * 0.45),)
    if base in ("Color", "Contrast", "Brightness", "Sharpness"):
        return (max(0.1, 1.0 + signed(level * 0.9)),) if name != base else (level * 1.8 + 0.1,)
    if name == "PosterizeOriginal":
        return (int(level * 4) + 4,)
    if base == "Posterize":
        bits = int(level * 4)
        return (4 - bits,) if name != base else (bits,)
    if base == "Solarize":
        threshold = min(256, int(level * 256))
        return (256 - threshold,) if name != base else (threshold,)
    if name == "SolarizeAdd":
        return (min(128, int(level * 110)),)
    raise ValueError(f"{name!r} is not one of timm's RandAugment ops")
