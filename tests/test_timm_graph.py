"""timm's RandAugment in DALI (``dali_ba.timm_graph``), the GPU path: each op against timm's PIL op, and the draws.

DALI runs here on the CPU; the GPU runs the same graph with the same operators.
"""

import functools
from collections import Counter

import numpy as np
import pytest
import torch
from nvidia.dali import fn, pipeline_def
from PIL import Image

from conftest import SMALL
from dali_ba import ImageFolderLoader
from dali_ba.recipes import IMAGENET_MEAN
from dali_ba.synthetic import natural_image
from dali_ba.timm_augment import ALL_OPS, INCREASING, RandConfig, _arguments
from dali_ba.timm_graph import apply_op, rand_augment

auto_augment = pytest.importorskip("timm.data.auto_augment")

FILL = tuple(min(255, round(255 * x)) for x in IMAGENET_MEAN)  # timm's transforms_factory
SIZE = 48
PHOTOS = [natural_image(np.random.default_rng(k), SIZE, SIZE) for k in range(6)]
GEOMETRIC = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"}


class Coin:
    """A generator whose every ``random()`` is ``value``: 1.0 negates (timm: ``random() > 0.5``)."""

    def __init__(self, value: float):
        self.value = value

    def random(self):
        return self.value


def run_graph(build, batch=PHOTOS, seed=0, iterations=1):
    """``build``'s graph on ``batch`` (uint8 HWC images), ``iterations`` batches of it, as arrays."""
    @pipeline_def(batch_size=len(batch), num_threads=1, device_id=None, enable_conditionals=True, seed=seed)
    def pipe():
        return build(fn.external_source(source=lambda: batch, layout="HWC", batch=True))

    pipeline = pipe()
    pipeline.build()
    outputs = []
    for _ in range(iterations):
        (out,) = pipeline.run()
        outputs += [np.asarray(out[i]) for i in range(len(batch))]
    return outputs


def op_graph(name, magnitude, sign, interpolation="bilinear"):
    """A graph of timm's op ``name`` at a fixed magnitude and sign (``timm_graph.apply_op``)."""
    return lambda images: apply_op(images, name, magnitude, sign, fill=FILL, interpolation=interpolation, size=SIZE)


def timms(name, magnitude, sign, image, resample=Image.BILINEAR):
    """timm's op on PIL; 0-bit Posterize is black (timm 1.0.31 asks Pillow 13 for it, which refuses)."""
    arguments = _arguments(name, magnitude, Coin(0.0 if sign > 0 else 1.0))
    if name.startswith("Posterize") and arguments[0] <= 0:
        return np.zeros_like(image)
    return np.asarray(auto_augment.NAME_TO_OP[name](Image.fromarray(image), *arguments, fillcolor=FILL, resample=resample))


@pytest.mark.parametrize("name", ALL_OPS)
def test_each_op_is_timms_pil_op_to_within_one_level(name):
    """Every op at magnitudes across its range, both signs: at most one level from timm's PIL op, on
    under 1% of the values (5% for the warps). Equalize is
    DALI's own (OpenCV's formula; DALI has no per-image histogram to build PIL's lookup table from)."""
    if name == "Equalize":
        ours = run_graph(op_graph(name, 9.0, 1))
        dalis = run_graph(lambda x: fn.equalize(x))
        assert all(np.array_equal(a, b) for a, b in zip(ours, dalis))
        diff = np.abs(np.stack(ours).astype(int) - np.stack([timms(name, 9.0, 1, photo) for photo in PHOTOS]))
        assert 0 < diff.mean() < 15  # a departure, measured on photos by benchmarks/timm_graph_probe.py
        return
    for magnitude in (0.0, 3.0, 7.5, 9.0, 10.0):
        for sign in (1, -1):
            ours = np.stack(run_graph(op_graph(name, magnitude, sign)))
            reference = np.stack([timms(name, magnitude, sign, photo) for photo in PHOTOS])
            diff = np.abs(ours.astype(int) - reference.astype(int))
            where = f"{name} at magnitude {magnitude}, sign {sign}"
            # The warps compute coordinates in float32 (PIL: doubles) and truncate the filtered value.
            share = 0.05 if name in GEOMETRIC else 0.01
            assert diff.max() <= 1 and (diff > 0).mean() < share, f"{where}: max {diff.max()}, {(diff > 0).mean():.4f} differ"


def test_geometric_ops_move_the_image_as_timm_does():
    """A wrong sign or centre moves the picture: the op then differs from timm's by many levels."""
    for name in sorted(GEOMETRIC):
        ours = np.stack(run_graph(op_graph(name, 9.0, 1)))
        same = np.stack([timms(name, 9.0, 1, photo) for photo in PHOTOS])
        mirrored = np.stack([timms(name, 9.0, -1, photo) for photo in PHOTOS])
        assert np.abs(ours.astype(int) - mirrored).mean() > 20 * max(np.abs(ours.astype(int) - same).mean(), 0.05), name


def test_bicubic_geometric_ops_are_bilinear_in_dali():
    """DALI's warp has no bicubic filter: with bicubic (DeiT's), the geometric ops filter bilinearly."""
    bilinear = run_graph(op_graph("Rotate", 9.0, 1, "bilinear"))
    bicubic = run_graph(op_graph("Rotate", 9.0, 1, "bicubic"))
    assert all(np.array_equal(a, b) for a, b in zip(bilinear, bicubic))


def classify(outputs, names, magnitude):
    """Which op (and sign) made each output: the one whose output at ``magnitude`` it equals."""
    candidates = {}
    for name in names:
        for sign in (1, -1):
            candidates[(name, sign)] = run_graph(op_graph(name, magnitude, sign), [PHOTO])
    return [{name for (name, _), images in candidates.items() if np.array_equal(images[0], out)} for out in outputs]


#: A photo whose values span 10-214: no op at magnitude 9 leaves it as it is (AutoContrast would at 0-255),
#: and no two ops give the same image (SolarizeIncreasing would be Invert above 26).
PHOTO = (PHOTOS[0] * 0.8 + 10).astype(np.uint8)
BATCH = [PHOTO] * 64


def test_the_draws_are_timms_ops_uniformly_each_applied_with_p():
    """n=1, no magnitude noise: every output is exactly one op's output at the magnitude; the ops
    come uniformly (15 of them), and with p=0.5 half the replicas keep the image (timm's AugmentOp)."""
    names = INCREASING
    for prob, seed in ((1.0, 1), (0.5, 2)):
        config = RandConfig(magnitude=9, num_ops=1, magnitude_std=0.0, increasing=True, prob=prob)
        graph = functools.partial(rand_augment, config=config, fill=FILL, interpolation="bilinear", size=SIZE)
        outputs = run_graph(graph, BATCH, seed=seed, iterations=6)
        untouched = [np.array_equal(out, PHOTO) for out in outputs]
        made = classify([out for out, same in zip(outputs, untouched) if not same], names, 9.0)
        assert all(made_by for made_by in made), "an output that no op at the magnitude makes"
        untouched = sum(untouched) / len(outputs)
        counts = Counter(name for made_by in made if len(made_by) == 1 for name in made_by)
        if prob == 1.0:
            assert untouched == 0
            assert len(counts) == 15 and min(counts.values()) > 0.3 * len(outputs) / 15, counts
        else:
            assert 0.4 < untouched < 0.6, untouched


def test_the_dali_path_runs_timms_recipe_with_the_loaders_contract(color_tree):
    root, _ = color_tree
    options = dict(SMALL, batch_size=4, aug_repeats=3, recipe="rand-m9-mstd0.5-inc1", resample="dali", seed=0)
    first = [images for images, _ in ImageFolderLoader(root, **options)]
    again = [images for images, _ in ImageFolderLoader(root, **options)]
    assert first[0].shape == (12, 3, SMALL["image_size"], SMALL["image_size"])
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    half = next(iter(ImageFolderLoader(root, **dict(options, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))))[0]
    assert half.min() >= -1.0 and half.max() <= 1.0


@pytest.mark.parametrize("factors, prob", [((0.4, 0.4, 0.4), None), ((0.5, 0.0, 0.3), 0.6)])
def test_color_jitter_in_dali_is_torchvisions_pil_colorjitter(factors, prob):
    """Each replica: its drawn factors, in its drawn order, through torchvision's adjust_* on PIL, to the pixel."""
    from torchvision.transforms import functional as F

    from dali_ba.timm_graph import color_jitter, jitter_orders

    @pipeline_def(batch_size=32, num_threads=1, device_id=None, enable_conditionals=True, seed=4)
    def pipe():
        images = fn.external_source(source=lambda: [PHOTOS[k % 6] for k in range(32)], layout="HWC", batch=True)
        return color_jitter(images, factors, prob, size=SIZE, params=True)

    pipeline = pipe()
    pipeline.build()
    out, drawn, order = pipeline.run()
    orders = jitter_orders(factors)
    adjust = {"Brightness": F.adjust_brightness, "Contrast": F.adjust_contrast, "Color": F.adjust_saturation}
    seen = Counter()
    for k in range(32):
        brightness, contrast, saturation = np.asarray(drawn[k]).tolist()
        for value, x in zip((brightness, contrast, saturation), factors):
            assert (value == 1.0) if x == 0 else (1 - x <= value <= 1 + x)
        index = int(np.asarray(order[k]))
        sequence = orders[index] if index < len(orders) else ()
        seen[sequence] += 1
        picture = Image.fromarray(PHOTOS[k % 6])
        for kind in sequence:
            picture = adjust[kind](picture, {"Brightness": brightness, "Contrast": contrast, "Color": saturation}[kind])
        assert np.array_equal(np.asarray(out[k]), np.asarray(picture)), (k, sequence)
    assert len([s for s in seen if s]) > 1 and (() in seen) == (prob is not None)


def test_auto_augment_picks_a_sub_policy_uniformly_and_each_op_with_its_probability():
    """timm's AutoAugment.__call__: a sub-policy at random, then each op if random() <= its probability."""
    from dali_ba.timm_graph import auto_augment

    policy = [[("Invert", 1.0, 0), ("PosterizeOriginal", 0.5, 0)], [("AutoContrast", 1.0, 0), ("Solarize", 0.0, 5)]]
    graph = functools.partial(auto_augment, policy=policy, magnitude_std=0.0, fill=FILL, interpolation="bilinear", size=SIZE)
    outputs = run_graph(graph, BATCH, seed=3, iterations=4)
    inverted = run_graph(op_graph("Invert", 0.0, 1), [PHOTO])[0]
    posterized = run_graph(lambda x: apply_op(apply_op(x, "Invert", 0.0, 1, fill=FILL, interpolation="bilinear", size=SIZE),
                                              "PosterizeOriginal", 0.0, 1, fill=FILL, interpolation="bilinear", size=SIZE),
                           [PHOTO])[0]
    contrasted = run_graph(op_graph("AutoContrast", 0.0, 1), [PHOTO])[0]
    kinds = Counter("inverted" if np.array_equal(out, inverted) else "posterized" if np.array_equal(out, posterized)
                    else "contrasted" if np.array_equal(out, contrasted) else "other" for out in outputs)
    assert kinds["other"] == 0, kinds
    n = len(outputs)
    assert abs(kinds["contrasted"] / n - 0.5) < 0.1 and abs(kinds["posterized"] / n - 0.25) < 0.08, kinds


def test_timms_auto_augment_policies_run_on_the_dali_path(color_tree):
    pytest.importorskip("timm")
    root, _ = color_tree
    options = dict(SMALL, batch_size=4, aug_repeats=2, recipe="v0r-mstd0.5", resample="dali")
    first = next(iter(ImageFolderLoader(root, **options)))[0]
    assert first.shape == (8, 3, SMALL["image_size"], SMALL["image_size"])
    assert torch.equal(first, next(iter(ImageFolderLoader(root, **options)))[0])
