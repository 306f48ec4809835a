"""torchvision's auto-augment policies on the CPU path (``policies.py``): torchvision's draws and ops."""

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as aa

from conftest import SMALL
from dali_ba import ImageFolderLoader
from dali_ba import pil_ops
from dali_ba.policies import Policy
from dali_ba.recipes import IMAGENET_MEAN, IMAGENET_STD
from dali_ba.synthetic import natural_image


def torchvision_draws(transform, count: int, size: int = 32) -> list[list[tuple[str, float]]]:
    """What torchvision's own ``forward`` applies, op by op, over ``count`` calls (its ``_apply_op`` recorded)."""
    calls, real = [], aa._apply_op

    def record(img, op_name, magnitude, interpolation, fill):
        calls[-1].append((op_name, round(float(magnitude), 4)))
        return img

    aa._apply_op = record
    try:
        torch.manual_seed(0)
        image = Image.new("RGB", (size, size))
        for _ in range(count):
            calls.append([])
            transform(image)
    finally:
        aa._apply_op = real
    return calls


def ours(name: str, count: int, size: int = 32, **options) -> list[list[tuple[str, float]]]:
    draws = Policy(name, size=size, **options).draw(np.random.default_rng(0), count)
    return [[(op, round(float(m), 4)) for op, m in ops] for ops in draws]


@pytest.mark.parametrize("name, transform", [
    ("trivialaugment", aa.TrivialAugmentWide()),
    ("randaugment", aa.RandAugment(magnitude=9)),
    ("autoaugment", aa.AutoAugment(aa.AutoAugmentPolicy.IMAGENET)),
])
def test_the_draws_are_distributed_as_torchvisions(name, transform):
    count = 3000
    theirs, mine = torchvision_draws(transform, count), ours(name, count)
    # Only torchvision's ops, with magnitudes of its space (signed where it signs them).
    space = transform._augmentation_space(31 if name != "autoaugment" else 10, (32, 32)) if name != "trivialaugment" \
        else transform._augmentation_space(31)
    for op, magnitude in (op for ops in mine for op in ops):
        magnitudes, signed = space[op]
        allowed = {round(float(m), 4) for m in magnitudes.reshape(-1)} | {0.0}
        assert abs(magnitude) in allowed and (signed or magnitude >= 0), (op, magnitude)
    for key in (lambda ops: len(ops), lambda ops: ops[0][0] if ops else None, lambda ops: ops[0] if ops else None):
        a, b = Counter(map(key, theirs)), Counter(map(key, mine))
        for value in set(a) | set(b):
            expected = a[value] / count
            assert abs(b[value] / count - expected) <= 0.02 + 0.25 * expected, (name, value, a[value], b[value])


def test_randaugment_takes_two_ops_at_its_magnitude():
    draws = ours("randaugment", 500, magnitude=15)
    space = aa.RandAugment(magnitude=15)._augmentation_space(31, (32, 32))
    for ops in draws:
        assert len(ops) == 2
        for op, magnitude in ops:
            magnitudes, _ = space[op]
            assert abs(magnitude) == (round(float(magnitudes[15]), 4) if magnitudes.ndim else 0.0)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_each_op_is_torchvisions_on_pil(interpolation):
    image = natural_image(np.random.default_rng(3), 48, 40)
    policy = Policy("trivialaugment", size=48, interpolation=interpolation)
    for op, (magnitudes, signed) in aa.TrivialAugmentWide()._augmentation_space(31).items():
        magnitude = float(magnitudes[20]) if magnitudes.ndim else 0.0
        for value in (magnitude, -magnitude) if signed else (magnitude,):
            expected = np.asarray(aa._apply_op(Image.fromarray(image), op, value, InterpolationMode(interpolation), None))
            made = policy.apply(image, [(op, value)])
            if op in pil_ops.WITHIN_ONE and interpolation == "bilinear":  # numpy's shears, to within one level
                assert np.abs(made.astype(int) - expected).max() <= 1, (op, value)
            else:
                assert np.array_equal(made, expected), (op, value)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_translations_made_without_pil_are_pils_to_the_pixel(interpolation):
    """The whole-pixel shifts computed in numpy: every magnitude of both policies' spaces, both
    signs, shifts past the edge, on a strided view, and chained with PIL's ops either side."""
    rng = np.random.default_rng(4)
    image = natural_image(rng, 40, 48)
    view = natural_image(rng, 40, 96)[:, ::2]  # a replica need not be contiguous
    mode = InterpolationMode(interpolation)

    def torchvision(img, ops):
        picture = Image.fromarray(np.ascontiguousarray(img))
        for op, value in ops:
            picture = aa._apply_op(picture, op, value, mode, None)
        return np.asarray(picture)

    policy = Policy("randaugment", size=48, interpolation=interpolation)
    shifts = [float(m) for m in np.linspace(0.0, 150.0 / 331.0 * 48, 31)] + [47.9, 48.0, 60.0]
    for op in ("TranslateX", "TranslateY"):
        for value in shifts + [-v for v in shifts]:
            for img in (image, view):
                ops = [(op, value)]
                assert np.array_equal(policy.apply(img, ops), torchvision(img, ops)), (op, value)
        chains = [[(op, 7.6), ("Solarize", 100.0)], [("Rotate", 12.0), (op, -9.3)], [(op, 3.0), (op, -5.0)]]
        for ops in chains:
            assert np.array_equal(policy.apply(image, ops), torchvision(image, ops)), ops


def test_the_ops_made_in_numpy_are_pils_to_the_pixel():
    """Every op ``pil_ops`` computes, at every magnitude of the three policies' spaces and both
    signs, on photos, odd sizes, a strided view, a flat image and one smaller than PIL's 3x3 filter."""
    rng = np.random.default_rng(5)
    flat = np.full((20, 30, 3), 77, np.uint8)
    flat[3, 4] = 200
    images = [natural_image(rng, 64, 64), natural_image(rng, 37, 51), natural_image(rng, 96, 80)[:, ::2], flat,
              natural_image(rng, 2, 9)]
    spaces = [aa.TrivialAugmentWide()._augmentation_space(31), aa.RandAugment()._augmentation_space(31, (64, 64)),
              aa.AutoAugment()._augmentation_space(10, (64, 64))]
    checked = set()
    for space in spaces:
        for op, (magnitudes, signed) in space.items():
            values = [float(m) for m in magnitudes.reshape(-1)] if magnitudes.ndim else [0.0]
            for value in values + [-v for v in values] if signed else values:
                for image in images:
                    if op not in pil_ops.EXACT:
                        continue
                    made = pil_ops.apply(image, op, value)
                    expected = aa._apply_op(Image.fromarray(np.ascontiguousarray(image)), op, value,
                                            InterpolationMode.BILINEAR, None)
                    assert np.array_equal(made, np.asarray(expected)), (op, value, image.shape)
                    checked.add(op)
    assert checked == pil_ops.EXACT
    for threshold in (0.0, 0.5, 254.5, 255.0, 300.0):  # Solarize's edges, beyond the spaces' magnitudes
        expected = aa._apply_op(Image.fromarray(images[0]), "Solarize", threshold, InterpolationMode.BILINEAR, None)
        assert np.array_equal(pil_ops.apply(images[0], "Solarize", threshold), np.asarray(expected)), threshold


def test_the_histogram_ops_are_pils_on_images_of_few_levels():
    """Equalize and AutoContrast where their tables are at their edges: few levels, a constant
    channel, a single pixel, strided views, and Equalize's table past 255 at the top level (PIL
    clips it), which photos rarely reach."""
    rng = np.random.default_rng(8)
    clipped = 0
    for case in range(120):
        h, w = (int(n) for n in rng.integers(1, 40, 2))
        levels = rng.choice(256, int(rng.integers(1, 256)), replace=False)
        image = levels[rng.integers(len(levels), size=(h, w, 3))].astype(np.uint8)
        if case % 3 == 0:
            image[..., 1] = 255
        if case % 5 == 0:
            image = image[:, ::-1]
        picture = Image.fromarray(np.ascontiguousarray(image))
        assert np.array_equal(pil_ops.equalize(image), np.asarray(ImageOps.equalize(picture))), image.shape
        assert np.array_equal(pil_ops.autocontrast(image), np.asarray(ImageOps.autocontrast(picture))), image.shape
        counts = np.bincount(image[..., 0].reshape(-1), minlength=256)
        step = (counts.sum() - counts[np.flatnonzero(counts)[-1]]) // 255
        clipped += bool(step) and (step // 2 + counts.sum() - counts[np.flatnonzero(counts)[-1]]) // step > 255
    assert clipped > 10  # the clipped top level was exercised


def test_the_shears_made_in_numpy_are_pils_to_within_one_level():
    """ShearX and ShearY at every magnitude of the three spaces, both signs, shifts past the image,
    on photos, odd sizes and a strided view: at most one level from PIL, at under 2% of the values,
    and 10 times closer to PIL than torchvision's own tensor back-end (on every fifth magnitude)."""
    rng = np.random.default_rng(6)
    images = [natural_image(rng, 64, 64), natural_image(rng, 37, 51), natural_image(rng, 96, 80)[:, ::2]]
    magnitudes = set()
    for space in (aa.TrivialAugmentWide()._augmentation_space(31), aa.RandAugment()._augmentation_space(31, (64, 64)),
                  aa.AutoAugment()._augmentation_space(10, (64, 64))):
        magnitudes |= {float(m) for m in space["ShearX"][0]}
    values = sorted(magnitudes | {-m for m in magnitudes} | {3.0, -60.0})
    assert pil_ops.WITHIN_ONE == {"ShearX", "ShearY"}
    for op in sorted(pil_ops.WITHIN_ONE):
        ours, tensor = [], []
        for value in values:
            for image in images:
                contiguous = np.ascontiguousarray(image)
                expected = np.asarray(aa._apply_op(Image.fromarray(contiguous), op, value,
                                                   InterpolationMode.BILINEAR, None)).astype(int)
                difference = np.abs(pil_ops.apply(image, op, value).astype(int) - expected)
                assert difference.max() <= 1 and (difference > 0).mean() < 0.02, (op, value, image.shape)
                ours.append(difference.mean())
                if len(ours) % 5:
                    continue
                theirs = aa._apply_op(torch.from_numpy(contiguous).permute(2, 0, 1), op, value,
                                      InterpolationMode.BILINEAR, None)
                tensor.append(np.abs(theirs.permute(1, 2, 0).numpy().astype(int) - expected).mean())
        assert np.mean(ours) * 10 < np.mean(tensor), (op, np.mean(ours), np.mean(tensor))


def denormalized(images: torch.Tensor) -> torch.Tensor:
    """Normalized float replicas back to the uint8 pixels they were made from."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images * std + mean).mul(255).round().clamp(0, 255).to(torch.uint8)


def test_a_replica_is_the_imagenet_replica_with_its_op(color_tree, monkeypatch):
    """The CPU path: the same windows and flips as ``imagenet`` (the pipeline draws them), then the op."""
    root, _ = color_tree
    options = dict(SMALL, batch_size=4, aug_repeats=3, image_size=24)
    plain, _ = next(iter(ImageFolderLoader(root, recipe="imagenet", **options)))
    monkeypatch.setattr(Policy, "draw", lambda self, rng, count: [[("Posterize", 3.0), ("Solarize", 100.0)]] * count)
    augmented, _ = next(iter(ImageFolderLoader(root, recipe="trivialaugment", **options)))
    for made, base in zip(denormalized(augmented), denormalized(plain)):
        picture = Image.fromarray(base.permute(1, 2, 0).numpy())
        for op, magnitude in (("Posterize", 3.0), ("Solarize", 100.0)):
            picture = aa._apply_op(picture, op, magnitude, InterpolationMode.BILINEAR, None)
        assert torch.equal(made, torch.from_numpy(np.array(picture)).permute(2, 0, 1))


@pytest.mark.parametrize("recipe", ["trivialaugment", "randaugment", "autoaugment"])
def test_the_cpu_path_keeps_the_contract_and_the_same_seed_gives_the_same_batches(color_tree, recipe):
    root, _ = color_tree
    options = dict(SMALL, batch_size=4, aug_repeats=3, recipe=recipe)
    first = [images for images, _ in ImageFolderLoader(root, **options)]
    loader = ImageFolderLoader(root, **options)
    assert loader.resample == "torch"
    again = [images for images, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, again)) and len(first) == 6
    images, labels = next(iter(ImageFolderLoader(root, **dict(options, seed=4))))
    assert images.shape == (12, 3, 16, 16) and images.dtype == torch.float32
    assert all(len(set(labels[3 * j:3 * j + 3].tolist())) == 1 for j in range(4)), "a sample's replicas share its label"


def test_color_jitter_draws_as_torchvisions_colorjitter_and_applies_its_pil_ops():
    """ColorJitter.get_params: a random order of the components, each factor uniform in [1 - x, 1 + x];
    RandomApply(p) leaves a replica untouched when p < rand. The ops are torchvision's adjust_* on PIL."""
    from torchvision.transforms import functional as F

    from dali_ba.policies import ColorJitter

    jitter = ColorJitter((0.4, 0.2, 0.0), prob=0.7)
    draws = jitter.draw(np.random.default_rng(0), 4000)
    skipped = sum(not ops for ops in draws) / len(draws)
    assert abs(skipped - 0.3) < 0.03
    applied = [ops for ops in draws if ops]
    assert all({name for name, _ in ops} == {"brightness", "contrast"} for ops in applied)  # saturation 0: left out
    orders = Counter(tuple(name for name, _ in ops) for ops in applied)
    assert set(orders) == {("brightness", "contrast"), ("contrast", "brightness")}
    assert abs(orders[("brightness", "contrast")] / len(applied) - 0.5) < 0.04
    brightness = np.array([f for ops in applied for name, f in ops if name == "brightness"])
    contrast = np.array([f for ops in applied for name, f in ops if name == "contrast"])
    assert 0.6 <= brightness.min() and brightness.max() <= 1.4 and abs(brightness.mean() - 1) < 0.02
    assert 0.8 <= contrast.min() and contrast.max() <= 1.2 and abs(contrast.std() - 0.4 / 12 ** 0.5) < 0.01
    image = natural_image(np.random.default_rng(1), 24, 20)
    ops = [("saturation", 1.3), ("brightness", 0.7), ("contrast", 1.25)]
    expected = F.adjust_contrast(F.adjust_brightness(F.adjust_saturation(Image.fromarray(image), 1.3), 0.7), 1.25)
    assert np.array_equal(jitter.apply(image, ops), np.asarray(expected))
