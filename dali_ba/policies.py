"""torchvision's auto-augment policies on the CPU path: drawn per replica, applied with torchvision's own ops.

Part of the resample stage (``resample.py``): on the CPU, a replica of ``trivialaugment``,
``randaugment`` or ``autoaugment`` is cut out, resized and flipped by torch, then gets its policy
here, then is normalized. The policies are torchvision's, not look-alikes: the op spaces and
magnitudes come from torchvision's own classes (``_augmentation_space``, ``policies``), the draws
follow their ``forward`` (an op uniformly, a magnitude bin uniformly or RandAugment's fixed one,
a sign by a coin, AutoAugment's sub-policy and probabilities), and each op is torchvision's
``_apply_op`` on a PIL image, the path torchvision's reference recipes run, or ``pil_ops``'s numpy
copy of it, byte for byte (the shears to within one level), for every op but Rotate (and the
bicubic shears). PIL's ops run in C, several times faster on a CPU than DALI's ``auto_aug`` ops
or torchvision's tensor ops; its geometric ops release the interpreter lock, its colour and
histogram ops do not, which is why those run in numpy here (``benchmarks/README.md``, "The recipes on the CPU").

Draws come from a ``numpy`` generator that the resample stage seeds from the loader's seed and
shard, so the same seed gives the same replicas. On a GPU the recipes stay in DALI (``recipes.py``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import pil_ops
from .timm_augment import TimmAutoAugment, TimmRandAugment, is_auto_augment, is_rand_augment

#: The recipes with a policy here, and the torchvision class that is each.
POLICIES = ("trivialaugment", "randaugment", "autoaugment")
#: An op to apply and its magnitude (signed), as torchvision's ``_apply_op`` takes them.
Op = tuple[str, float]


class Policy:
    """One of torchvision's auto-augment policies, for replicas of ``size x size`` pixels.

    Args:
        name: ``"trivialaugment"`` (``TrivialAugmentWide``), ``"randaugment"`` (``RandAugment``,
            2 ops) or ``"autoaugment"`` (``AutoAugment``, ImageNet policy).
        size: The replicas' side (RandAugment's and AutoAugment's translations scale with it).
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``: the geometric ops'
            filter, as torchvision's reference recipes pass their ``--interpolation`` to the policy.
        magnitude: RandAugment's magnitude bin (0-30).
    """

    def __init__(self, name: str, *, size: int, interpolation: str = "bilinear", magnitude: int = 9):
        from torchvision.transforms import autoaugment as aa
        from torchvision.transforms import InterpolationMode

        if name not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, but got {name!r}")
        self.name = name
        self._apply_op = aa._apply_op
        self._interpolation = InterpolationMode(interpolation)
        if name == "trivialaugment":
            space = aa.TrivialAugmentWide()._augmentation_space(31)
        elif name == "randaugment":
            space = aa.RandAugment(magnitude=magnitude)._augmentation_space(31, (size, size))
        else:
            policy = aa.AutoAugment(aa.AutoAugmentPolicy.IMAGENET)
            space = policy._augmentation_space(10, (size, size))
            self._subpolicies = policy.policies
        self._magnitude = magnitude
        # op name -> (magnitudes as floats, or None for an op without one; signed)
        self._space = {op: (magnitudes.tolist() if magnitudes.ndim > 0 else None, signed)
                       for op, (magnitudes, signed) in space.items()}
        self._names = list(self._space)

    def draw(self, rng: np.random.Generator, count: int) -> list[list[Op]]:
        """The ops of ``count`` replicas, each a list of ``(op, magnitude)`` in the order to apply."""
        return [self._draw_one(rng) for _ in range(count)]

    def _draw_one(self, rng: np.random.Generator) -> list[Op]:
        if self.name == "trivialaugment":  # TrivialAugmentWide.forward
            op = self._names[rng.integers(len(self._names))]
            magnitudes, signed = self._space[op]
            magnitude = magnitudes[rng.integers(len(magnitudes))] if magnitudes is not None else 0.0
            return [(op, -magnitude if signed and rng.integers(2) else magnitude)]
        if self.name == "randaugment":  # RandAugment.forward, num_ops=2
            ops = []
            for _ in range(2):
                op = self._names[rng.integers(len(self._names))]
                magnitudes, signed = self._space[op]
                magnitude = magnitudes[self._magnitude] if magnitudes is not None else 0.0
                ops.append((op, -magnitude if signed and rng.integers(2) else magnitude))
            return ops
        # AutoAugment.forward: a sub-policy, then each of its two ops with its probability.
        subpolicy = self._subpolicies[rng.integers(len(self._subpolicies))]
        probs, signs = rng.random(2), rng.integers(2, size=2)
        ops = []
        for i, (op, p, magnitude_id) in enumerate(subpolicy):
            if probs[i] <= p:
                magnitudes, signed = self._space[op]
                magnitude = magnitudes[magnitude_id] if magnitude_id is not None else 0.0
                ops.append((op, -magnitude if signed and signs[i] == 0 else magnitude))
        return ops

    def apply(self, image: np.ndarray, ops: Sequence[Op]) -> np.ndarray:
        """``image`` (uint8 ``HWC``) with ``ops`` applied as torchvision's ``_apply_op`` on PIL
        applies them, as a new uint8 ``HWC`` array (``image`` itself where no op changes it).
        The ops that ``pil_ops`` computes skip PIL: to its bytes, or the shears to within one level."""
        return pil_ops.chain(
            image, [op for op in ops if op[0] != "Identity"],
            lambda array, op: pil_ops.apply(array, *op, self._interpolation.value),
            lambda picture, op: self._apply_op(picture, *op, interpolation=self._interpolation, fill=None))


class ColorJitter:
    """torchvision's ``ColorJitter(brightness, contrast, saturation)`` for replicas, as timm applies
    it without ``--aa``, with the interface of :class:`Policy`.

    The draws follow ``ColorJitter.get_params``: an order of the four components (hue, which is
    not offered, is skipped), and for each non-zero one a factor uniform in
    ``[max(0, 1 - x), 1 + x]``; with ``prob``, the whole only with that probability (timm's
    ``--color-jitter-prob``, ``RandomApply``). The ops are torchvision's ``adjust_brightness``,
    ``adjust_contrast`` and ``adjust_saturation`` on PIL (PIL's enhancers).

    Args:
        factors: ``(brightness, contrast, saturation)``.
        prob: The probability of jittering a replica; ``None`` is always.
    """

    NAMES = ("brightness", "contrast", "saturation")

    def __init__(self, factors: Sequence[float], prob: float | None = None):
        self.name = "color_jitter"
        self._ranges = [(max(0.0, 1.0 - x), 1.0 + x) if x > 0 else None for x in factors]
        self._prob = prob

    def draw(self, rng: np.random.Generator, count: int) -> list[list[Op]]:
        """The ops of ``count`` replicas: ``(component, factor)`` in the order to apply."""
        replicas = []
        for _ in range(count):
            if self._prob is not None and self._prob < rng.random():  # RandomApply: skipped when p < rand
                replicas.append([])
                continue
            order = rng.permutation(4)  # ColorJitter.get_params: torch.randperm(4), hue (3) left out
            factors = [rng.uniform(*r) if r is not None else None for r in self._ranges]
            replicas.append([(self.NAMES[i], factors[i]) for i in order if i < 3 and factors[i] is not None])
        return replicas

    def apply(self, image: np.ndarray, ops: Sequence[Op]) -> np.ndarray:
        """``image`` (uint8 ``HWC``) with ``ops`` applied as torchvision's ``adjust_*`` on PIL, as a new array."""
        from torchvision.transforms import functional as F

        adjust = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast, "saturation": F.adjust_saturation}
        return pil_ops.chain(image, ops, lambda array, op: None, lambda picture, op: adjust[op[0]](picture, op[1]))


def policy_for(recipe, *, size: int, interpolation: str):
    """The CPU path's policy for ``recipe`` (a ``recipes.Recipe``): torchvision's (:class:`Policy`),
    timm's RandAugment (``timm_augment``) for a recipe in its grammar, torchvision's
    :class:`ColorJitter` where the recipe has one, or ``None`` for none."""
    if recipe.color_jitter:
        return ColorJitter(recipe.color_jitter, recipe.color_jitter_prob)
    if is_auto_augment(recipe.name):
        return TimmAutoAugment(recipe.name, mean=recipe.mean, interpolation=interpolation)
    if is_rand_augment(recipe.name):
        return TimmRandAugment(recipe.name, mean=recipe.mean, interpolation=interpolation)
    if recipe.policy:
        return Policy(recipe.policy, size=size, interpolation=interpolation, magnitude=recipe.magnitude)
    return None
