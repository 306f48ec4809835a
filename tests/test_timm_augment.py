"""timm's RandAugment on the CPU path (``timm_augment.py``): timm's grammar, draws and ops."""

import random
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SMALL
from dali_ba import ImageFolderLoader
from dali_ba.recipes import IMAGENET_MEAN
from dali_ba.synthetic import natural_image
from dali_ba.timm_augment import INCREASING, LINE_SHIFTS, TRANSFORMS, TimmRandAugment, _arguments, parse

auto_augment = pytest.importorskip("timm.data.auto_augment")

FILL = tuple(min(255, round(255 * x)) for x in IMAGENET_MEAN)  # timm's transforms_factory


def test_the_grammar_is_timms():
    deit = parse("rand-m9-mstd0.5-inc1")
    assert (deit.magnitude, deit.num_ops, deit.magnitude_std, deit.increasing, deit.prob) == (9, 2, 0.5, True, 0.5)
    default = parse("rand")
    assert (default.magnitude, default.num_ops, default.magnitude_std, default.increasing) == (10, 2, 0.0, False)
    wide = parse("rand-m9-n3-mstd101-mmax20-p0.7-inc0")
    assert (wide.num_ops, wide.magnitude_std, wide.magnitude_max, wide.prob, wide.increasing) == (3, float("inf"), 20, 0.7, False)
    assert parse("rand-m7-mstd") == parse("rand-m7")  # timm skips a section without a number
    for bad, words in (("rand-x3", "'x3'"), ("rand-m9.5", "'m9.5'"), ("rand-tweights", "transform sets"),
                       ("augmix-m3", "not timm's RandAugment"), ("rand-n0", "n >= 1")):
        with pytest.raises(ValueError, match=words):
            parse(bad)
    for recipe in ("rand-m9-mstd0.5-inc1", "rand-m7-mstd0.5-inc1", "rand-m6-mstd0.5-inc1", "rand-m9-n3-mstd1-p0.7"):
        ops = auto_augment.rand_augment_transform(recipe, {"img_mean": FILL})  # timm takes what we take
        config = parse(recipe)
        assert ops.num_layers == config.num_ops
        assert [op.name for op in ops.ops] == list(INCREASING if config.increasing else TRANSFORMS)
        assert {(op.magnitude, op.prob, op.magnitude_std) for op in ops.ops} == {
            (config.magnitude, config.prob, config.magnitude_std)}


class Coin:
    """A generator whose every ``random()`` is ``value``: 1.0 negates (timm: ``random() > 0.5``)."""

    def __init__(self, value: float):
        self.value = value

    def random(self):
        return self.value


@pytest.mark.parametrize("negate", [False, True])
def test_each_ops_arguments_are_timms(monkeypatch, negate):
    monkeypatch.setattr(random, "random", lambda: 1.0 if negate else 0.0)
    for name in sorted(set(TRANSFORMS) | set(INCREASING)):
        level_to_arg = auto_augment.LEVEL_TO_ARG[name]
        for magnitude in (0.0, 1.7, 5.0, 9.0, 9.49, 10.0):
            expected = level_to_arg(magnitude, {"translate_pct": 0.45}) if level_to_arg else ()
            assert _arguments(name, magnitude, Coin(1.0 if negate else 0.0)) == expected, (name, magnitude)


def test_each_op_is_timms_on_pil():
    """Every op, at the arguments of magnitudes 5 and 9, both signs: timm's own function on PIL,
    to the pixel (the colour and histogram ops through ``pil_ops``), or the line
    shifts to within one level at under 5% of the values (3.8% for a shift by 10.8 px, whose
    blends land on whole levels most often)."""
    rng = np.random.default_rng(3)
    image = natural_image(rng, 40, 48)
    for interpolation, resample in (("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)):
        policy = TimmRandAugment("rand-inc1", mean=IMAGENET_MEAN, interpolation=interpolation)
        for name in sorted(set(TRANSFORMS) | set(INCREASING)):
            for magnitude in (5.0, 9.0):
                for coin in (0.0, 1.0):
                    arguments = _arguments(name, magnitude, Coin(coin))
                    if name == "PosterizeIncreasing" and arguments == (0,):
                        continue  # the one departure, below
                    expected = auto_augment.NAME_TO_OP[name](Image.fromarray(image), *arguments, fillcolor=FILL,
                                                             resample=resample)
                    made = policy.apply(image, [(name, arguments)])
                    if name in LINE_SHIFTS and interpolation == "bilinear":  # pil_ops.shift_lines: within one level
                        difference = np.abs(made.astype(int) - np.asarray(expected))
                        assert difference.max() <= 1 and (difference > 0).mean() < 0.05, (name, arguments)
                    else:
                        assert np.array_equal(made, np.asarray(expected)), (name, arguments, interpolation)


def test_posterize_to_no_bits_is_black_where_pillow_13_refuses():
    image = natural_image(np.random.default_rng(4), 16, 16)
    arguments = _arguments("PosterizeIncreasing", 10.0, Coin(0.0))
    assert arguments == (0,)
    policy = TimmRandAugment("rand-inc1", mean=IMAGENET_MEAN)
    assert not policy.apply(image, [("PosterizeIncreasing", arguments)]).any()
    if tuple(int(v) for v in Image.__version__.split(".")[:2]) >= (13, 0):
        with pytest.raises(ValueError):  # timm 1.0.31 on Pillow 13: why dali-ba departs here
            auto_augment.NAME_TO_OP["PosterizeIncreasing"](Image.fromarray(image), 0)


def timm_calls(recipe: str, count: int) -> list[list[tuple]]:
    """What timm's own RandAugment applies over ``count`` calls: each op's name and arguments."""
    transform = auto_augment.rand_augment_transform(recipe, {"img_mean": FILL})
    calls = []
    for op in transform.ops:
        op.aug_fn = lambda img, *arguments, _name=op.name, **_: calls[-1].append((_name, arguments)) or img
    random.seed(0)
    np.random.seed(0)
    image = Image.new("RGB", (8, 8))
    for _ in range(count):
        calls.append([])
        transform(image)
    return calls


@pytest.mark.parametrize("recipe", ["rand-m9-mstd0.5-inc1", "rand-m7-n3-mstd0.5", "rand-m9-mstd101-p0.8"])
def test_the_draws_are_distributed_as_timms(recipe):
    count = 20000  # about 1500 draws of each op: 0.08 below is over 5 standard errors
    theirs = timm_calls(recipe, count)
    mine = TimmRandAugment(recipe, mean=IMAGENET_MEAN).draw(np.random.default_rng(0), count)

    def close(a: Counter, b: Counter, what):
        for value in set(a) | set(b):
            expected = a[value] / count
            assert abs(b[value] / count - expected) <= 0.015 + 0.15 * expected, (recipe, what, value, a[value], b[value])

    close(Counter(map(len, theirs)), Counter(map(len, mine)), "ops a replica")
    close(Counter(op for ops in theirs for op, _ in ops), Counter(op for ops in mine for op, _ in ops), "op")
    for name in set(TRANSFORMS) | set(INCREASING):  # each op's arguments: sign, and where they fall
        a = np.array([arguments[0] for ops in theirs for op, arguments in ops if op == name and arguments], float)
        b = np.array([arguments[0] for ops in mine for op, arguments in ops if op == name and arguments], float)
        if len(a) < 50:
            continue
        assert len(b) > 0.7 * len(a)
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):  # the two distribution functions at timm's quantiles
            at = np.quantile(a, q)
            assert abs((a <= at).mean() - (b <= at).mean()) <= 0.08, (recipe, name, q)


def test_the_loader_takes_the_recipe_on_the_cpu_and_refuses_it_in_dali(color_tree, monkeypatch):
    root, _ = color_tree
    options = dict(SMALL, batch_size=4, aug_repeats=3, recipe="rand-m9-mstd0.5-inc1")
    loader = ImageFolderLoader(root, **options)
    assert loader.resample == "torch"
    first = [images for images, _ in loader]
    again = [images for images, _ in ImageFolderLoader(root, **options)]
    assert len(first) == 6 and all(torch.equal(a, b) for a, b in zip(first, again))
    other = next(iter(ImageFolderLoader(root, **dict(options, seed=5))))[0]
    assert not torch.equal(first[0], other)
    images, labels = next(iter(ImageFolderLoader(root, **options)))
    assert images.shape == (12, 3, 16, 16)
    assert all(len(set(labels[3 * j:3 * j + 3].tolist())) == 1 for j in range(4))
    with pytest.raises(ValueError, match="'rand-m9-n0'"):
        ImageFolderLoader(root, **dict(options, recipe="rand-m9-n0"))
    monkeypatch.setitem(sys.modules, "timm.data.auto_augment", None)
    policy = TimmRandAugment("rand-m9", mean=IMAGENET_MEAN)
    with pytest.raises(ImportError, match=r"dali-ba\[timm\]"):
        policy.apply(natural_image(np.random.default_rng(0), 8, 8), [("Rotate", (10.0,))])


def test_random_interpolation_draws_bilinear_or_bicubic_for_each_op_as_timm(monkeypatch):
    """timm's ops take no filter from train.py with --train-interpolation random, and draw one at each call."""
    policy = TimmRandAugment("rand-m9-n4-p1.0", mean=IMAGENET_MEAN, interpolation="random")
    ops = [op for replica in policy.draw(np.random.default_rng(0), 200) for op in replica]
    assert {op[2] for op in ops} == {"bilinear", "bicubic"} and all(len(op) == 3 for op in ops)
    image = natural_image(np.random.default_rng(1), 40, 40)
    for name in ("Rotate", "ShearX", "TranslateXRel"):
        for mode, resample in (("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)):
            ours = policy.apply(image, [(name, (0.2 if name != "Rotate" else 20.0,), mode)])
            theirs = np.asarray(auto_augment.NAME_TO_OP[name](Image.fromarray(image), 0.2 if name != "Rotate" else 20.0,
                                                             fillcolor=FILL, resample=resample))
            assert np.abs(ours.astype(int) - theirs).max() <= 1, (name, mode)


def test_auto_augment_policies_are_timms_and_drawn_as_timm_draws():
    from dali_ba.timm_augment import TimmAutoAugment, auto_policy, parse_auto

    assert parse_auto("original") == parse_auto("original-mstd0") and parse_auto("v0r-mstd0.5").magnitude_std == 0.5
    for bad, words in (("v0-m9", "'m9'"), ("3a", "not offered"), ("augmix", "policies are")):
        with pytest.raises(ValueError, match=words):
            parse_auto(bad)
    for name in ("original", "originalr", "v0", "v0r"):
        theirs = auto_augment.auto_augment_policy(name, {"img_mean": FILL})
        assert auto_policy(name) == [[(op.name, op.prob, op.magnitude) for op in sub] for sub in theirs]
    policy = TimmAutoAugment("v0", mean=IMAGENET_MEAN)
    table = auto_policy("v0")
    draws = policy.draw(np.random.default_rng(0), 5000)
    assert {name for ops in draws for name, _ in ops} <= {name for sub in table for name, _, _ in sub}
    for name in ("Equalize", "Rotate", "Solarize"):  # each op as often as its probabilities over the 25 say
        expected = sum(p for sub in table for op, p, _ in sub if op == name) / len(table)
        drawn = sum(op == name for ops in draws for op, _ in ops) / len(draws)
        assert abs(drawn - expected) < 0.04, (name, drawn, expected)
    rotations = [arguments[0] for ops in draws for op, arguments in ops if op == "Rotate"]
    assert {abs(round(r, 6)) for r in rotations} <= {round(m / 10 * 30, 6) for sub in table for op, _, m in sub if op == "Rotate"}
    image = natural_image(np.random.default_rng(2), 32, 32)
    posterized = policy.apply(image, [("PosterizeOriginal", (5,))])
    assert np.array_equal(posterized, np.asarray(auto_augment.NAME_TO_OP["PosterizeOriginal"](Image.fromarray(image), 5)))
    assert np.array_equal(policy.apply(image, [("Posterize", (0,))]), np.zeros_like(image))  # v0 asks for 0 bits
