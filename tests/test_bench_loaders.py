"""The bench's loaders: each closes without leaving threads behind, and none loops on an empty epoch."""

import gc
import os

import pytest
import torch

from dali_ba.bench.loaders import REGISTRY, BenchSpec, _forever
from dali_ba.sources import scan_image_folder


def threads() -> int:
    return len(os.listdir("/proc/self/task"))  # DALI's native threads too, which threading does not list


def spec(**kw):
    args = dict(batch_size=4, aug_repeats=2, image_size=32, dtype=torch.float32, device=torch.device("cpu"), workers=2)
    args.update(kw)
    return BenchSpec(**args)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
@pytest.mark.parametrize("name", ["dali-ba", "dali-ba-dali", "dali-ba-full", "dali-large"])
def test_a_closed_loader_leaves_no_thread_without_the_cyclic_collector(color_tree, name):
    root, _ = color_tree
    index = scan_image_folder(root)
    before = threads()
    gc.disable()  # a reference cycle would keep the pipeline and its threads until the next collection
    try:
        loader = REGISTRY[name].factory(index, spec())
        next(loader.batches)
        next(loader.batches)
        assert threads() > before
        loader.close()
        del loader
        assert threads() == before
    finally:
        gc.enable()


def test_an_epoch_without_a_batch_is_an_error_not_an_endless_loop():
    batches = _forever(lambda: iter(()), "torch-large")
    with pytest.raises(RuntimeError, match="torch-large delivered no batch in a whole epoch"):
        next(batches)


def test_dali_large_larger_than_the_data_set_is_refused_by_name(color_tree):
    root, _ = color_tree
    with pytest.raises(ValueError, match="dali-large needs 32 images per batch"):
        REGISTRY["dali-large"].factory(scan_image_folder(root), spec(batch_size=8, aug_repeats=4))


def test_the_variant_says_how_the_dali_loaders_decode(color_tree):
    root, _ = color_tree
    index = scan_image_folder(root)
    assert REGISTRY["dali-ba"].factory(index, spec()).variant == "region decode"
    assert REGISTRY["dali-ba-full"].factory(index, spec()).variant == "whole-image decode"
    assert REGISTRY["dali-large"].factory(index, spec()).variant == "fused decode+crop"


@pytest.mark.parametrize("recipe, options", [("trivialaugment", {}), ("randaugment", {"ra_magnitude": 12}),
                                             ("autoaugment", {"random_erase": 1.0, "interpolation": "bicubic"})])
@pytest.mark.parametrize("name", ["dali-ba", "dali-large", "torch-once"])
def test_every_loader_runs_the_recipe_asked_for(color_tree, name, recipe, options):
    root, _ = color_tree
    loader = REGISTRY[name].factory(scan_image_folder(root), spec(workers=0 if name == "torch-once" else 2, recipe=recipe,
                                                                  **options))
    try:
        images, labels = next(loader.batches)
        assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32 and labels.shape == (8,)
        if options.get("random_erase") == 1.0:  # every replica erased: some pixels exactly 0 after normalizing
            assert all((image == 0).all(dim=0).any() for image in images)
    finally:
        loader.close()


def test_the_bench_refuses_a_recipe_option_of_another_recipe(tmp_path):
    from dali_ba.bench.runner import BenchConfig

    with pytest.raises(ValueError, match="ra_magnitude is the randaugment recipe's magnitude, but recipe='imagenet'"):
        BenchConfig(data_dir=str(tmp_path), ra_magnitude=12)
    with pytest.raises(ValueError, match="recipe must be one of imagenet, trivialaugment, randaugment, autoaugment"):
        BenchConfig(data_dir=str(tmp_path), recipe="cifar")


@pytest.mark.parametrize("name", ["dali-ba", "timm", "torch-once", "torch-repeat"])
def test_a_timm_recipe_runs_timms_transforms_and_erasing(color_tree, name):
    """DeiT's recipe: timm's RandAugment, and timm's RandomErasing in pixel mode (N(0, 1) noise, never exactly 0)."""
    root, _ = color_tree
    index = scan_image_folder(root)
    loader = REGISTRY[name].factory(index, spec(workers=0 if name.startswith("torch") else 1, recipe="rand-m9-mstd0.5-inc1",
                                                random_erase=1.0, interpolation="bicubic"))
    try:
        images, labels = next(loader.batches)
        assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32 and labels.shape == (8,)
        if name == "timm":  # RepeatAugSampler: each image twice in a row, each copy read and decoded again
            assert (labels[0::2] == labels[1::2]).all() and loader.read_counts()[0] % 8 == 0  # (a batch ahead)
        # Pixel-mode erasing fills a rectangle with N(0, 1) noise per pixel; the test images are flat
        # colours with a faint texture, so only the noise makes neighbours differ by more than 1.
        jumps = ((images[..., 1:] - images[..., :-1]).abs() > 1.0).flatten(1).sum(1)
        assert (jumps >= 3).all(), jumps
    finally:
        loader.close()


def test_the_bench_runs_a_timm_recipe_only_where_timms_transforms_exist(tmp_path):
    from dali_ba.bench.runner import BenchConfig

    BenchConfig(data_dir=str(tmp_path), recipe="rand-m9-mstd0.5-inc1", loaders=("dali-ba", "timm"), interpolation="bicubic")
    with pytest.raises(ValueError, match="leave out dali-large"):
        BenchConfig(data_dir=str(tmp_path), recipe="rand-m9-mstd0.5-inc1", loaders=("dali-ba", "dali-large"))
    with pytest.raises(ValueError, match="loader timm runs timm's recipes"):
        BenchConfig(data_dir=str(tmp_path), loaders=("dali-ba", "timm"))


def test_timms_posterize_at_zero_bits_gives_black_in_the_bench_as_in_dali_ba():
    """timm 1.0.31's inc1 recipes ask Pillow for 0 bits, which Pillow 13 refuses; the bench's timm
    transforms get black there, as dali_ba.timm_augment gives, so that timm's loader runs at all."""
    import numpy as np
    from PIL import Image

    from dali_ba.bench.loaders import _timm_transform, posterize_zero_bits_black

    image = Image.fromarray(np.full((4, 4, 3), 200, np.uint8))
    assert not np.asarray(posterize_zero_bits_black(image, 0)).any()
    assert np.asarray(posterize_zero_bits_black(image, 8)).min() == 200
    assert (np.asarray(posterize_zero_bits_black(image, 1)) == 128).all()
    transform = _timm_transform(spec(recipe="rand-m10-mstd0-inc1", image_size=16), prefetcher=True)
    posterize = [op for step in transform.transforms for op in getattr(step, "ops", []) if op.name.startswith("Posterize")]
    assert posterize and all(op.aug_fn is posterize_zero_bits_black for op in posterize)
    for _ in range(20):  # magnitude 10, no noise: PosterizeIncreasing asks for 0 bits whenever it is drawn
        transform(image.resize((24, 24)))
