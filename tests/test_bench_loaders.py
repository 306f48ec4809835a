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
