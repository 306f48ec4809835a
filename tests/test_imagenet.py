"""``imagenet_loaders``: a train and a val loader for root/train and root/val, each with its own options."""

import pytest

from conftest import write_color_tree
from dali_ba import EvalOptions, ReadOptions, TrainOptions, imagenet_loaders


def test_imagenet_loaders_pair_train_and_val(imagenet_tree):
    train, val = imagenet_loaders(imagenet_tree, batch_size=4, aug_repeats=2, image_size=16, device="cpu", seed=0)
    assert (len(train), len(val), train.config.recipe, val.config.recipe) == (6, 2, "imagenet", "val")
    assert sum(len(labels) for _, labels in val) == 9
    assert train.sampler is train and len(train.dataset) == 24 and train.batch_size == 4


def test_imagenet_loaders_name_the_missing_split(tmp_path):
    write_color_tree(tmp_path / "train")
    with pytest.raises(FileNotFoundError, match=r"val.*root/train/<class>/ and root/val/<class>/"):
        imagenet_loaders(tmp_path, batch_size=2, aug_repeats=2, device="cpu")


def test_the_val_loader_reads_every_image_once_whatever_the_training_options(imagenet_tree):
    train, val = imagenet_loaders(imagenet_tree, batch_size=4, aug_repeats=2, image_size=16, device="cpu", seed=0,
                                  random_erase=0.25, epoch_samples=8, resample="torch")
    assert (train.config.random_erase, train.config.epoch_samples, train.resample) == (0.25, 8, "torch")
    assert (val.config.random_erase, val.config.epoch_samples, val.config.aug_repeats) == (0, None, 1)
    assert sum(len(labels) for _, labels in val) == 9, "all 9 val images, not the 8 of a training epoch"


def test_resample_torch_builds_both_loaders(imagenet_tree):
    train, val = imagenet_loaders(imagenet_tree, batch_size=4, aug_repeats=2, image_size=16, device="cpu", seed=0,
                                  resample="torch")
    assert train.resample == "torch" and val.config.recipe == "val" and len(val) == 2


def test_the_val_loader_shares_only_the_reading_options(imagenet_tree):
    train, val = imagenet_loaders(imagenet_tree, batch_size=4, aug_repeats=2, image_size=16, device="cpu", seed=0,
                                  interpolation="bicubic", channels_last=True, num_threads=1, val_image_size=12,
                                  val_resize_size=14, val_batch_size=3)
    assert (val.config.interpolation, val.config.channels_last, val.config.num_threads) == ("bicubic", True, 1)
    assert (val.config.image_size, val.config.resize_size, val.config.batch_size) == (12, 14, 3)
    images, _ = next(iter(val))
    assert images.shape == (3, 3, 12, 12)


def test_an_option_of_neither_loader_is_refused_by_name(imagenet_tree):
    with pytest.raises(TypeError, match="resize_size"):
        imagenet_loaders(imagenet_tree, batch_size=4, aug_repeats=2, device="cpu", resize_size=20)


def test_eval_options_have_no_training_fields():
    names = {f for f in EvalOptions.__dataclass_fields__}
    assert names == set(ReadOptions.__dataclass_fields__) | {"resize_size"}
    training = set(TrainOptions.__dataclass_fields__) - set(ReadOptions.__dataclass_fields__)
    assert {"random_erase", "epoch_samples", "resample", "ra_magnitude", "shuffle", "aug_repeats"} <= training
    assert not names & training
    val = TrainOptions(random_erase=0.5, epoch_samples=3, device="cpu", dtype="float16").eval_options(image_size=32)
    assert val.loader_options()["recipe"] == "val" and val.dtype.is_floating_point and val.image_size == 32
    with pytest.raises(ValueError, match="recipe='val' is the evaluation recipe"):
        TrainOptions(recipe="val")
