"""torchvision's reference script, flag by flag (``dali_ba.reference``), and the README's change to it."""

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_color_tree

from dali_ba import ImageFolderLoader
from dali_ba.reference import FLAG_MAP, ReplicaMix, reference_loaders

ROOT = Path(__file__).parent.parent


def torchvision_args(data_path, *argv):
    """The flags of torchvision's ``references/classification/train.py`` that shape the data, with its defaults."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-path", default=str(data_path))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-b", "--batch-size", default=4, type=int)
    parser.add_argument("-j", "--workers", default=16, type=int)
    parser.add_argument("--mixup-alpha", default=0.0, type=float)
    parser.add_argument("--cutmix-alpha", default=0.0, type=float)
    parser.add_argument("--cache-dataset", action="store_true")
    parser.add_argument("--test-only", action="store_true")
    parser.add_argument("--auto-augment", default=None, type=str)
    parser.add_argument("--ra-magnitude", default=9, type=int)
    parser.add_argument("--augmix-severity", default=3, type=int)
    parser.add_argument("--random-erase", default=0.0, type=float)
    parser.add_argument("--interpolation", default="bilinear", type=str)
    parser.add_argument("--val-resize-size", default=256, type=int)
    parser.add_argument("--val-crop-size", default=224, type=int)
    parser.add_argument("--train-crop-size", default=224, type=int)
    parser.add_argument("--ra-sampler", action="store_true")
    parser.add_argument("--ra-reps", default=3, type=int)
    parser.add_argument("--weights", default=None, type=str)
    parser.add_argument("--backend", default="PIL", type=str.lower)
    parser.add_argument("--use-v2", action="store_true")
    return parser.parse_args(list(map(str, argv)))


@pytest.fixture
def imagenet_tree(tmp_path):
    write_color_tree(tmp_path / "imagenet" / "train", classes=3, per_class=8)
    write_color_tree(tmp_path / "imagenet" / "val", classes=3, per_class=2)
    return tmp_path / "imagenet"


def test_recipe_flags_reach_the_loaders(imagenet_tree):
    args = torchvision_args(imagenet_tree, "--auto-augment", "ta_wide", "--train-crop-size", "32", "--val-crop-size", "24",
                            "--val-resize-size", "28", "-j", "3", "-b", "4")
    train, val = reference_loaders(args, aug_repeats=2, seed=0)
    assert (train.config.recipe, train.config.image_size, train.config.batch_size, train.config.aug_repeats) == (
        "trivialaugment", 32, 4, 2)
    assert (val.config.recipe, val.config.image_size, val.config.resize_size) == ("val", 24, 28)
    assert train.config.num_threads == val.config.num_threads == 3
    images, labels = next(iter(train))
    assert images.shape == (8, 3, 32, 32) and labels.shape == (8,)
    assert next(iter(val))[0].shape[-1] == 24


@pytest.mark.parametrize("policy, recipe", [(None, "imagenet"), ("ra", "randaugment"), ("imagenet", "autoaugment")])
def test_auto_augment_policies_map_to_recipes(imagenet_tree, policy, recipe):
    args = torchvision_args(imagenet_tree, *(["--auto-augment", policy] if policy else []), "--train-crop-size", "16",
                            "--val-crop-size", "16", "--val-resize-size", "18")
    assert reference_loaders(args, aug_repeats=2)[0].config.recipe == recipe


def test_workers_zero_is_one_dali_thread(imagenet_tree):
    args = torchvision_args(imagenet_tree, "-j", "0")
    assert reference_loaders(args, aug_repeats=2)[0].config.num_threads == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--interpolation", "lanczos"], r"--interpolation lanczos is not supported; dali-ba resizes with bilinear, bicubic"),
        (["--auto-augment", "augmix"], r"--auto-augment augmix has no dali-ba recipe; supported: ra, ta_wide, imagenet"),
        (["--ra-sampler", "--ra-reps", "4"], r"--ra-sampler --ra-reps 4 repeats each image 4 times, but --aug-repeats 2"),
        (["--ra-sampler", "--ra-reps", "2", "-b", "5"], r"--batch-size 5 is not divisible by 2"),
        (["--ra-sampler", "--ra-reps", "2"], r"RASampler takes floor\(N // 256 \* 256 / world\) samples .* 0 for N=24"),
        (["--weights", "NoSuch_Weights.V1", "--test-only"], r"--weights NoSuch_Weights.V1: not a torchvision weights name"),
    ],
)
def test_flags_dali_ba_cannot_honour_are_refused_by_name(imagenet_tree, argv, message):
    with pytest.raises(ValueError, match=message):
        reference_loaders(torchvision_args(imagenet_tree, *argv), aug_repeats=2)


def ra_sampler_len(n, reps, world, rank, batch_size):
    """Steps per epoch of torchvision's reference script with --ra-sampler: its RASampler's length
    (references/classification/sampler.py) in a DataLoader that keeps the short last batch."""
    num_samples = int(math.ceil(n * float(reps) / world))
    total_size = num_samples * world
    indices = [i for i in range(n) for _ in range(reps)]
    indices += indices[: total_size - len(indices)]
    selected = int(math.floor(n // 256 * 256 / world))
    return -(-len(indices[rank:total_size:world][:selected]) // batch_size)


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("reps, batch_size", [(3, 12), (2, 16), (4, 8)])
def test_ra_sampler_keeps_torchvisions_steps_per_epoch_and_images_per_step(tmp_path, world, reps, batch_size):
    from PIL import Image

    one = tmp_path / "one.png"
    Image.new("RGB", (8, 8), (120, 40, 200)).save(one)
    for split, count in (("train", 601), ("val", 3)):
        for k in range(count):
            folder = tmp_path / "data" / split / f"c{k % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            os.link(one, folder / f"{k:04d}.png")
    seen = []
    for rank in range(world):
        args = torchvision_args(tmp_path / "data", "--ra-sampler", "--ra-reps", reps, "-b", batch_size, "--train-crop-size", "8",
                                "--val-crop-size", "8", "--val-resize-size", "8")
        train, _ = reference_loaders(args, aug_repeats=reps, shard_id=rank, num_shards=world, num_threads=1, seed=1)
        assert len(train) == ra_sampler_len(601, reps, world, rank, batch_size), "the recipe's steps per epoch"
        for epoch in range(2):
            train.set_epoch(epoch)
            batches = [(images.shape[0], train.last_indices.copy()) for images, _ in train]
            assert {shape for shape, _ in batches} == {batch_size}, "the model sees --batch-size images per step"
            seen.append((epoch, [i for _, indices in batches for i in indices.tolist()]))
    for epoch in range(2):
        ids = [i for e, part in seen if e == epoch for i in part]
        assert len(ids) == len(set(ids)), "each selected image once per epoch, as K replicas"
        assert len(ids) <= 601 and len(ids) >= 512 // reps
    assert {i for e, part in seen if e == 0 for i in part} != {i for e, part in seen if e == 1 for i in part}


def test_random_erase_reaches_the_train_loader_only(imagenet_tree):
    args = torchvision_args(imagenet_tree, "--random-erase", "0.25", "--train-crop-size", "16", "--val-crop-size", "16",
                            "--val-resize-size", "18")
    train, val = reference_loaders(args, aug_repeats=2)
    assert (train.config.random_erase, val.config.random_erase) == (0.25, 0.0)


@pytest.mark.parametrize("mode", ["bicubic", "nearest"])
def test_interpolation_reaches_both_loaders(imagenet_tree, mode):
    args = torchvision_args(imagenet_tree, "--interpolation", mode, "--train-crop-size", "16", "--val-crop-size", "16",
                            "--val-resize-size", "18")
    train, val = reference_loaders(args, aug_repeats=2)
    assert train.config.interpolation == val.config.interpolation == mode
    assert next(iter(train))[0].shape == (8, 3, 16, 16) and next(iter(val))[0].shape == (6, 3, 16, 16)


def test_ra_magnitude_reaches_the_randaugment_recipe_only(imagenet_tree):
    args = torchvision_args(imagenet_tree, "--auto-augment", "ra", "--ra-magnitude", "15", "--train-crop-size", "16",
                            "--val-crop-size", "16", "--val-resize-size", "18")
    train, val = reference_loaders(args, aug_repeats=2)
    assert (train.config.recipe, train.config.ra_magnitude, val.config.ra_magnitude) == ("randaugment", 15, 9)
    assert torch.isfinite(next(iter(train))[0]).all()
    with pytest.raises(ValueError, match="ra_magnitude is the randaugment recipe's magnitude, but recipe='imagenet'"):
        ImageFolderLoader(imagenet_tree / "train", batch_size=4, device="cpu", ra_magnitude=15)


@pytest.mark.parametrize("weights, crop, resize, mode", [
    ("Inception_V3_Weights.IMAGENET1K_V1", 299, 342, "bilinear"),
    ("EfficientNet_B3_Weights.IMAGENET1K_V1", 300, 320, "bicubic"),
    ("ResNet50_Weights.IMAGENET1K_V2", 224, 232, "bilinear"),
])
def test_weights_with_test_only_take_the_weights_own_preprocessing(imagenet_tree, weights, crop, resize, mode):
    args = torchvision_args(imagenet_tree, "--weights", weights, "--test-only")
    train, val = reference_loaders(args, aug_repeats=2)
    assert (val.config.image_size, val.config.resize_size, val.config.interpolation) == (crop, resize, mode)
    assert train.config.interpolation == "bilinear", "the train loader keeps --interpolation"
    assert next(iter(val))[0].shape[-2:] == (crop, crop)


def test_mixup_pairs_different_samples_and_keeps_the_replica_order(imagenet_tree):
    # The val recipe makes a sample's M replicas identical, so an image mixed with a replica of
    # itself would come out unchanged: every image must change, and keep its own label's mass.
    loader = ImageFolderLoader(imagenet_tree / "train", batch_size=4, aug_repeats=3, recipe="val", image_size=16,
                               device="cpu", seed=1)
    mixed = ReplicaMix(loader, mixup_alpha=0.4)
    torch.manual_seed(0)
    for images, labels in loader:
        out, soft = mixed.mix(images.clone(), labels)
        assert out.shape == images.shape and soft.shape == (12, 3)
        assert torch.allclose(soft.sum(dim=1), torch.ones(12))
        assert all(not torch.allclose(out[k], images[k], atol=1e-3) for k in range(12)), "no image mixed with itself"
        assert all(soft[k, labels[k]] > 0 for k in range(12)), "sample-major order kept"


def test_mixup_flags_wrap_the_train_loader_and_keep_its_interface(imagenet_tree):
    args = torchvision_args(imagenet_tree, "--mixup-alpha", "0.2", "--train-crop-size", "16")
    train, val = reference_loaders(args, aug_repeats=2)
    assert isinstance(train, ReplicaMix) and not isinstance(val, ReplicaMix)
    assert len(train) == len(train.loader) and train.sampler is train.loader and len(train.dataset) == 24
    train.set_epoch(3)
    assert train.state_dict()["epoch"] == 3


def test_cutmix_keeps_channels_last(imagenet_tree):
    args = torchvision_args(imagenet_tree, "--cutmix-alpha", "1.0", "--train-crop-size", "16")
    train, _ = reference_loaders(args, aug_repeats=2, channels_last=True)
    images, labels = next(iter(train))
    assert images.is_contiguous(memory_format=torch.channels_last) and labels.shape == (8, 3)


def test_readme_maps_every_flag():
    readme = (ROOT / "README.md").read_text()
    for flag in FLAG_MAP:
        assert f"`{flag}`" in readme, f"README's flag table lacks {flag}"


# The lines of torchvision's references/classification/train.py (main, 2024-2026) around the README's
# change: where main() makes its DataLoaders, and the end of get_args_parser().
TORCHVISION_TRAIN_EXCERPT = '''\
    data_loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=train_sampler,
        num_workers=args.workers,
        pin_memory=True,
        collate_fn=collate_fn,
    )
    data_loader_test = torch.utils.data.DataLoader(
        dataset_test, batch_size=args.batch_size, sampler=test_sampler, num_workers=args.workers, pin_memory=True
    )

    print("Creating model")
    model = torchvision.models.get_model(args.model, weights=args.weights, num_classes=num_classes)
    model.to(device)

    parser.add_argument("--backend", default="PIL", type=str.lower, help="PIL or tensor - case insensitive")
    parser.add_argument("--use-v2", action="store_true", help="Use V2 transforms")
    return parser


if __name__ == "__main__":
    args = get_args_parser().parse_args()
    main(args)
'''


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs the patch program")
def test_readmes_change_applies_with_patch(tmp_path):
    diff = re.search(r"```diff\n(--- a/train\.py.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    target = tmp_path / "train.py"
    target.write_text(TORCHVISION_TRAIN_EXCERPT)
    done = subprocess.run(["patch", "-p1", "--no-backup-if-mismatch"], input=diff, text=True, capture_output=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    patched = target.read_text()
    assert "reference_loaders(args, aug_repeats=args.aug_repeats)" in patched and '"--aug-repeats"' in patched


def test_training_script_takes_torchvisions_recipe_flags(imagenet_tree, tmp_path):
    """Both backends of the example script honour the same flags, MixUp/CutMix included."""
    for backend in ("dali-ba", "torchvision"):
        done = subprocess.run(
            [sys.executable, ROOT / "examples" / "train_imagenet.py", imagenet_tree, "--data-backend", backend, "--arch",
             "resnet18", "-b", "4", "-M", "2", "--train-crop-size", "32", "--val-crop-size", "32", "--val-resize-size", "36",
             "--auto-augment", "ta_wide", "--mixup-alpha", "0.2", "--cutmix-alpha", "1.0", "--random-erase", "0.25",
             "--interpolation", "bicubic", "--device", "cpu", "-j", "0",
             "--epochs", "1", "--output-dir", tmp_path / backend],
            capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "(48 images)" in done.stdout and "(6 images)" in done.stdout, done.stdout[-2000:]
    refused = subprocess.run([sys.executable, ROOT / "examples" / "train_imagenet.py", imagenet_tree, "--auto-augment", "augmix",
                              "--device", "cpu"], capture_output=True, text=True, timeout=240)
    assert refused.returncode != 0 and "--auto-augment augmix has no dali-ba recipe" in refused.stderr
    refused = subprocess.run([sys.executable, ROOT / "examples" / "train_imagenet.py", imagenet_tree, "--ra-sampler",
                              "--data-backend", "torchvision"], capture_output=True, text=True, timeout=240)
    assert refused.returncode == 2 and "--ra-sampler needs --data-backend dali-ba" in refused.stderr


#: torchvision's published recipes (references/classification/README.md, and the ResNet-50 V2
#: recipe of its "train state-of-the-art models" write-up): each model's flags, as its commands give them.
RECIPES = {
    "alexnet": "--model alexnet --lr 1e-2",
    "resnet50": "--model resnet50",
    "resnext101_32x8d": "--model resnext101_32x8d --epochs 100",
    "mobilenet_v2": "--model mobilenet_v2 --epochs 300 --lr 0.045 --wd 0.00004 --lr-step-size 1 --lr-gamma 0.98",
    "mobilenet_v3_large": "--model mobilenet_v3_large --epochs 600 --opt rmsprop --batch-size 128 --lr 0.064 --wd 0.00001 "
                          "--lr-step-size 2 --lr-gamma 0.973 --auto-augment imagenet --random-erase 0.2",
    "efficientnet_b3": "--model efficientnet_b3 --test-only --weights EfficientNet_B3_Weights.IMAGENET1K_V1",
    "inception_v3": "--model inception_v3 --test-only --weights Inception_V3_Weights.IMAGENET1K_V1",
    "efficientnet_v2_s": "--model efficientnet_v2_s --batch-size 128 --lr 0.5 --lr-scheduler cosineannealinglr "
                         "--lr-warmup-epochs 5 --lr-warmup-method linear --auto-augment ta_wide --epochs 600 --random-erase 0.1 "
                         "--label-smoothing 0.1 --mixup-alpha 0.2 --cutmix-alpha 1.0 --weight-decay 0.00002 "
                         "--norm-weight-decay 0.0 --train-crop-size 300 --model-ema --val-crop-size 384 --val-resize-size 384 "
                         "--ra-sampler --ra-reps 4",
    "regnet_y_400mf": "--model regnet_y_400mf --epochs 100 --batch-size 128 --wd 0.00005 --lr=0.8 "
                      "--lr-scheduler=cosineannealinglr --lr-warmup-method=linear --lr-warmup-epochs=5 --lr-warmup-decay=0.1",
    "vit_b_16": "--model vit_b_16 --epochs 300 --batch-size 512 --opt adamw --lr 0.003 --wd 0.3 --lr-scheduler cosineannealinglr "
                "--lr-warmup-method linear --lr-warmup-epochs 30 --lr-warmup-decay 0.033 --amp --label-smoothing 0.11 "
                "--mixup-alpha 0.2 --auto-augment ra --clip-grad-norm 1 --ra-sampler --cutmix-alpha 1.0 --model-ema",
    "convnext_tiny": "--model convnext_tiny --batch-size 128 --opt adamw --lr 1e-3 --lr-scheduler cosineannealinglr "
                     "--lr-warmup-epochs 5 --lr-warmup-method linear --auto-augment ta_wide --epochs 600 --random-erase 0.1 "
                     "--label-smoothing 0.1 --mixup-alpha 0.2 --cutmix-alpha 1.0 --weight-decay 0.05 --norm-weight-decay 0.0 "
                     "--train-crop-size 176 --model-ema --val-resize-size 232 --ra-sampler --ra-reps 4",
    "swin_t": "--model swin_t --epochs 300 --batch-size 128 --opt adamw --lr 0.001 --weight-decay 0.05 --norm-weight-decay 0.0 "
              "--bias-weight-decay 0.0 --transformer-embedding-decay 0.0 --lr-scheduler cosineannealinglr --lr-min 0.00001 "
              "--lr-warmup-method linear --lr-warmup-epochs 20 --lr-warmup-decay 0.01 --amp --label-smoothing 0.1 "
              "--mixup-alpha 0.8 --clip-grad-norm 5.0 --cutmix-alpha 1.0 --random-erase 0.25 --interpolation bicubic "
              "--auto-augment ta_wide --model-ema --ra-sampler --ra-reps 4 --val-resize-size 224",
    "swin_v2_t": "--model swin_v2_t --epochs 300 --batch-size 128 --opt adamw --lr 0.001 --weight-decay 0.05 "
                 "--label-smoothing 0.1 --mixup-alpha 0.8 --cutmix-alpha 1.0 --random-erase 0.25 --interpolation bicubic "
                 "--auto-augment ta_wide --model-ema --ra-sampler --ra-reps 4 --val-resize-size 256 --val-crop-size 256 "
                 "--train-crop-size 256",
    "maxvit_t": "--model maxvit_t --epochs 400 --batch-size 128 --opt adamw --lr 3e-3 --weight-decay 0.05 "
                "--lr-scheduler cosineannealinglr --lr-min 1e-5 --lr-warmup-method linear --lr-warmup-epochs 32 "
                "--label-smoothing 0.1 --mixup-alpha 0.8 --clip-grad-norm 1.0 --interpolation bicubic --auto-augment ta_wide "
                "--policy-magnitude 15 --model-ema --val-resize-size 224 --val-crop-size 224 --train-crop-size 224 --amp",
    "shufflenet_v2_x1_5": "--model shufflenet_v2_x1_5 --batch-size=128 --lr=0.5 --lr-scheduler=cosineannealinglr "
                          "--lr-warmup-epochs=5 --lr-warmup-method=linear --auto-augment=ta_wide --epochs=600 --random-erase=0.1 "
                          "--weight-decay=0.00002 --norm-weight-decay=0.0 --label-smoothing=0.1 --mixup-alpha=0.2 "
                          "--cutmix-alpha=1.0 --train-crop-size=176 --model-ema --val-resize-size=232 --ra-sampler --ra-reps=4",
    "resnet50_v2": "--model resnet50 --batch-size 128 --lr 0.5 --lr-scheduler cosineannealinglr --lr-warmup-epochs 5 "
                   "--lr-warmup-method linear --auto-augment ta_wide --epochs 600 --random-erase 0.1 --weight-decay 0.00002 "
                   "--norm-weight-decay 0.0 --label-smoothing 0.1 --mixup-alpha 0.2 --cutmix-alpha 1.0 --train-crop-size 176 "
                   "--model-ema --val-resize-size 232 --ra-sampler --ra-reps 4",
}


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory):
    """601 training images (hard links of a few PNGs: RASampler needs 256 or more) and 3 val images."""
    from PIL import Image

    root = tmp_path_factory.mktemp("recipes")
    for c in range(3):
        Image.new("RGB", (40, 32), (60 + 60 * c, 90, 200 - 50 * c)).save(root / f"c{c}.png")
    for split, count in (("train", 601), ("val", 3)):
        for k in range(count):
            folder = root / "data" / split / f"c{k % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            os.link(root / f"c{k % 3}.png", folder / f"{k:04d}.png")
    return root / "data"


@pytest.mark.parametrize("name", RECIPES)
def test_every_published_recipe_runs_through_the_swap_in_with_its_data_flags_honoured(big_tree, name):
    # The script's other flags (optimizer, schedule, EMA, label smoothing, clipping, AMP) do not touch data.
    args = torchvision_args(big_tree, *_data_flags(RECIPES[name].replace("=", " ").split()))
    k = args.ra_reps if args.ra_sampler else 2
    args.batch_size = 8 if not args.ra_sampler else 4 * k  # the recipe's flags, a batch that fits this machine
    train, val = reference_loaders(args, aug_repeats=k, num_threads=1, seed=0)
    base = train.loader if isinstance(train, ReplicaMix) else train
    config = base.config
    assert config.aug_repeats == k and config.image_size == args.train_crop_size
    assert config.interpolation == args.interpolation.lower()
    assert config.random_erase == args.random_erase
    assert config.recipe == {None: "imagenet", "ra": "randaugment", "ta_wide": "trivialaugment", "imagenet": "autoaugment"}[
        args.auto_augment]
    assert isinstance(train, ReplicaMix) == (args.mixup_alpha > 0 or args.cutmix_alpha > 0)
    if args.ra_sampler:
        assert config.batch_size * k == args.batch_size and len(train) == ra_sampler_len(601, k, 1, 0, args.batch_size)
    if args.test_only and args.weights:
        from dali_ba.reference import weights_preprocessing

        assert (val.config.image_size, val.config.resize_size, val.config.interpolation) == weights_preprocessing(args.weights)
    else:
        assert (val.config.image_size, val.config.resize_size) == (args.val_crop_size, args.val_resize_size)
    images, labels = next(iter(train))
    assert images.shape == (config.batch_size * k, 3, args.train_crop_size, args.train_crop_size)
    assert torch.isfinite(images).all()


def _data_flags(argv):
    """The flags of ``argv`` that ``torchvision_args`` knows (with their values); the rest dropped."""
    known = {"--device", "-b", "--batch-size", "-j", "--workers", "--mixup-alpha", "--cutmix-alpha", "--cache-dataset",
             "--test-only", "--auto-augment", "--ra-magnitude", "--augmix-severity", "--random-erase", "--interpolation",
             "--val-resize-size", "--val-crop-size", "--train-crop-size", "--ra-sampler", "--ra-reps", "--weights",
             "--backend", "--use-v2"}
    switches = {"--cache-dataset", "--test-only", "--ra-sampler", "--use-v2"}
    out, i = [], 0
    while i < len(argv):
        width = 1 if argv[i] in switches else 2
        if argv[i] in known:
            out += argv[i:i + width]
            i += width
        else:
            i += 1  # an unknown flag, or its value
    return out
