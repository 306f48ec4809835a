import pytest
import torch

from dali_ba import ImageFolderLoader, LoaderConfig


@pytest.mark.parametrize("name", ["batch_size", "aug_repeats", "image_size"])
@pytest.mark.parametrize("value", [0, -3])
def test_sizes_below_one_name_the_parameter_and_value(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be >= 1, but got {value}"):
        LoaderConfig(**{name: value})


@pytest.mark.parametrize("name", ["batch_size", "aug_repeats", "image_size"])
def test_sizes_must_be_ints(name):
    with pytest.raises(TypeError, match=rf"{name} must be an int, but got 2.5"):
        LoaderConfig(**{name: 2.5})


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"recipe must be one of 'imagenet'.*but got 'mixup'"):
        LoaderConfig(recipe="mixup")


@pytest.mark.parametrize("device", ["tpu", "cuda:x", 3])
def test_unknown_device_is_refused(device):
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        LoaderConfig(device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ValueError, match=r"device='cuda' asks for CUDA, but torch.cuda.is_available\(\) is False"):
        LoaderConfig(device="cuda")


def test_unsupported_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype must be one of torch.float32, torch.float16"):
        LoaderConfig(dtype=torch.int32)


def test_shard_arguments_are_checked():
    with pytest.raises(ValueError, match="shard_id and num_shards go together"):
        LoaderConfig(shard_id=0)
    with pytest.raises(ValueError, match="shard_id must be < num_shards=2, but got 2"):
        LoaderConfig(shard_id=2, num_shards=2)


def test_on_error_must_be_raise_or_skip():
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip', but got 'ignore'"):
        LoaderConfig(on_error="ignore")


def test_loader_checks_options_before_reading_the_data(tmp_path):
    with pytest.raises(ValueError, match="aug_repeats must be >= 1"):
        ImageFolderLoader(tmp_path / "does-not-exist", aug_repeats=0)


def test_dtype_names_are_accepted():
    assert LoaderConfig(dtype="float16").dtype is torch.float16
    assert LoaderConfig(batch_size=2, aug_repeats=3).effective_batch_size == 6


def test_resample_must_be_auto_dali_or_torch():
    with pytest.raises(ValueError, match=r"resample must be 'auto', 'dali' or 'torch', but got 'pil'"):
        LoaderConfig(resample="pil")


@pytest.mark.parametrize("recipe", ["val", "cifar"])
def test_resample_in_torch_is_refused_for_recipes_it_cannot_make(recipe):
    with pytest.raises(ValueError, match=rf"resample='torch' makes the replicas of the recipes that start with a "
                                         rf"random-resized crop \(imagenet, randaugment, trivialaugment, autoaugment\), "
                                         rf"but recipe='{recipe}'"):
        LoaderConfig(resample="torch", recipe=recipe, device="cpu")


@pytest.mark.parametrize(
    "recipe, resample, expected",
    [("imagenet", "auto", "torch"), ("imagenet", "dali", "dali"), ("imagenet", "torch", "torch"), ("val", "auto", "dali"),
     ("cifar", "auto", "dali")],
)
def test_auto_resample_is_torch_for_the_imagenet_recipe_on_the_cpu(recipe, resample, expected):
    assert LoaderConfig(recipe=recipe, resample=resample, device="cpu").resolve_resample(torch.device("cpu")) == expected


def test_auto_resample_stays_in_dali_on_a_gpu():
    assert LoaderConfig(device="cpu").resolve_resample(torch.device("cuda", 0)) == "dali"
    with pytest.raises(ValueError, match=r"resample='torch' runs on the CPU only, but device is 'cuda:0'"):
        LoaderConfig(resample="torch", device="cpu").resolve_resample(torch.device("cuda", 0))


def test_resize_size_is_the_val_recipes_and_must_hold_the_crop():
    assert LoaderConfig(recipe="val", image_size=224, resize_size=232).resize_size == 232
    with pytest.raises(ValueError, match="resize_size is the val recipe's resize before its center crop, but recipe='imagenet'"):
        LoaderConfig(resize_size=256)
    with pytest.raises(ValueError, match="resize_size=200 is smaller than image_size=224"):
        LoaderConfig(recipe="val", resize_size=200)


@pytest.mark.parametrize("name, value", [("mean", (0.5, 0.5)), ("mean", "abc"), ("std", (0.5, 0.0, 0.5)),
                                         ("std", (0.5, float("nan"), 0.5))])
def test_mean_and_std_are_three_numbers_a_std_above_zero(name, value):
    with pytest.raises(ValueError, match=f"{name} must be None or three numbers"):
        LoaderConfig(**{name: value})


def test_a_models_mean_and_std_normalize_both_paths_and_the_val_loader(color_tree):
    """(x - 0.5) / 0.5 lies in [-1, 1]; ImageNet's normalization reaches -2.1 and 2.6."""
    from dali_ba import EvalOptions, TrainOptions

    root, _ = color_tree
    half = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), image_size=16, device="cpu", batch_size=4)
    for options in (TrainOptions(**half, aug_repeats=2, resample="torch").loader_options(),
                    TrainOptions(**half, aug_repeats=2, resample="dali").loader_options(),
                    EvalOptions(**half).loader_options()):
        images, _ = next(iter(ImageFolderLoader(root, **options)))
        assert images.min() >= -1.0 and images.max() <= 1.0 and images.min() < -0.3, options.get("resample", "val")
    assert TrainOptions(**half).eval_options().mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("scale", [(0.0, 1.0), (0.5, 0.4), (0.1, 1.5), (0.1,), "ab"])
def test_crop_scale_is_an_area_range_within_the_image(scale):
    with pytest.raises(ValueError, match="crop_scale is the random-resized crop's area range"):
        LoaderConfig(crop_scale=scale)


def test_crop_scale_needs_a_crop_recipe():
    with pytest.raises(ValueError, match="recipe='cifar' has no such crop"):
        LoaderConfig(recipe="cifar", crop_scale=(0.35, 1.0))
