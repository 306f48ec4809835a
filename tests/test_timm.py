"""timm's train.py through dali-ba (``dali_ba.timm``): the swap-in loader, its flags, and the README's change."""

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_color_tree

pytest.importorskip("timm")
from timm.data import FastCollateMixup, create_dataset  # noqa: E402
from timm.data.distributed_sampler import RepeatAugSampler  # noqa: E402

from dali_ba.timm import FLAG_MAP, TimmLoader, create_loader, loader_factory, repeat_aug_epoch  # noqa: E402

ROOT = Path(__file__).parent.parent


@pytest.fixture
def timm_tree(tmp_path):
    """timm's default layout: ``train/`` (3 classes x 8 colour JPEGs) and ``validation/`` (3 x 2)."""
    write_color_tree(tmp_path / "data" / "train", classes=3, per_class=8)
    write_color_tree(tmp_path / "data" / "validation", classes=3, per_class=2)
    return tmp_path / "data"


def timm_args(*argv):
    """The data flags of timm's ``train.py`` (1.0.x), with its defaults, and the README's two."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="")
    parser.add_argument("-b", "--batch-size", type=int, default=128)
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--no-aug", action="store_true")
    parser.add_argument("--train-crop-mode", default=None)
    parser.add_argument("--scale", type=float, nargs="+", default=[0.08, 1.0])
    parser.add_argument("--ratio", type=float, nargs="+", default=[3. / 4., 4. / 3.])
    parser.add_argument("--hflip", type=float, default=0.5)
    parser.add_argument("--vflip", type=float, default=0.)
    parser.add_argument("--color-jitter", type=float, default=0.4)
    parser.add_argument("--color-jitter-prob", type=float, default=None)
    parser.add_argument("--grayscale-prob", type=float, default=None)
    parser.add_argument("--gaussian-blur-prob", type=float, default=None)
    parser.add_argument("--aa", default=None)
    parser.add_argument("--aug-repeats", type=float, default=0)
    parser.add_argument("--aug-splits", type=int, default=0)
    parser.add_argument("--jsd-loss", action="store_true")
    parser.add_argument("--reprob", type=float, default=0.)
    parser.add_argument("--remode", default="pixel")
    parser.add_argument("--recount", type=int, default=1)
    parser.add_argument("--resplit", action="store_true")
    parser.add_argument("--mixup", type=float, default=0.0)
    parser.add_argument("--cutmix", type=float, default=0.0)
    parser.add_argument("--cutmix-minmax", type=float, nargs="+", default=None)
    parser.add_argument("--mixup-prob", type=float, default=1.0)
    parser.add_argument("--mixup-switch-prob", type=float, default=0.5)
    parser.add_argument("--mixup-mode", default="batch")
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--train-interpolation", default="random")
    parser.add_argument("--naflex-loader", action="store_true")
    parser.add_argument("--train-img-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--train-batches-per-epoch", type=int, default=None)
    parser.add_argument("--epoch-repeats", type=float, default=0.)
    parser.add_argument("--train-num-samples", type=int, default=None)
    parser.add_argument("--val-num-samples", type=int, default=None)
    parser.add_argument("--input-img-mode", default=None)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dali-ba", action="store_true")
    parser.add_argument("--batch-augment", type=int, default=0)
    return parser.parse_args(list(map(str, argv)))


#: Flags that run as timm means them (the DeiT flags) besides the one each case changes.
OK = ("--train-interpolation", "bicubic", "--aa", "rand-m9-mstd0.5-inc1", "-b", "6")


@pytest.mark.parametrize("argv, message", [
    (("--dataset", "torch/cifar10"), "--dataset torch/cifar10"),
    (("--no-aug",), "--no-aug"),
    (("--train-interpolation", "bicubic", "--aa", "augmix-m5-w4-d2"), "--aa augmix-m5-w4-d2"),
    (("--train-interpolation", "bicubic", "--aa", "3a"), "--aa 3a"),
    ((*OK, "--train-interpolation", "lanczos"), "--train-interpolation lanczos"),
    ((*OK, "--scale", "0.5", "0.4"), "--scale 0.5 0.4"),
    ((*OK, "--ratio", "0.5", "2"), "--ratio 0.5 2.0"),
    ((*OK, "--hflip", "1.5"), "--hflip 1.5"),
    ((*OK, "--train-crop-mode", "rkrr"), "--train-crop-mode rkrr"),
    ((*OK, "--grayscale-prob", "0.2"), "--grayscale-prob 0.2"),
    ((*OK, "--gaussian-blur-prob", "0.1"), "--gaussian-blur-prob 0.1"),
    ((*OK, "--aug-splits", "3"), "--aug-splits 3"),
    ((*OK, "--jsd-loss"), "--jsd-loss"),
    ((*OK, "--reprob", "0.25", "--resplit"), "--resplit True"),
    ((*OK, "--reprob", "0.25", "--remode", "gauss"), "--remode gauss"),
    ((*OK, "--aug-repeats", "3", "--batch-augment", "2"), "--aug-repeats 3.0 and --batch-augment 2"),
    ((*OK, "--aug-repeats", "1.5"), "--aug-repeats 1.5"),
    ((*OK, "-b", "7", "--aug-repeats", "3"), "-b 7 is not divisible by 3"),
    ((*OK, "--naflex-loader"), "--naflex-loader"),
    ((*OK, "--train-img-sizes", "128", "160"), "--train-img-sizes"),
    ((*OK, "--epoch-repeats", "2"), "--epoch-repeats"),
    ((*OK, "--input-img-mode", "L"), "--input-img-mode L"),
])
def test_flags_dali_ba_cannot_honour_are_refused_by_name_before_any_data_set(argv, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        loader_factory(timm_args(*argv))


def test_flags_timm_honours_pass_the_check():
    for argv in (OK, (*OK, "--aug-repeats", "3", "--reprob", "0.25", "--mixup", "0.8", "--cutmix", "1.0"),
                 ("--train-interpolation", "bilinear", "--color-jitter", "0", "--batch-augment", "4"),
                 (*OK, "--color-jitter", "0.3", "--grayscale-prob", "0", "--scale", "0.08", "1.0"),
                 ("--aa", "rand-m7-mstd0.5-inc1", "-b", "6", "--aug-repeats", "3"),  # --train-interpolation random
                 ("-b", "6"), ("--color-jitter-prob", "0.8"),  # timm's defaults: random filter, --color-jitter 0.4
                 ("--aa", "v0r-mstd0.5"), ("--aa", "original")):
        assert callable(loader_factory(timm_args(*argv)))


def test_color_jitter_is_timms_default_without_aa_and_off_under_it(timm_tree):
    plain = create_loader(timm_tree / "train", 16, 4, is_training=True, interpolation="random", device="cpu", seed=0,
                          color_jitter_prob=0.8)
    assert (plain.loader.config.color_jitter, plain.loader.config.color_jitter_prob) == (0.4, 0.8)
    assert plain.loader.config.interpolation == "random"
    assert next(iter(plain))[0].shape == (4, 3, 16, 16)
    under_aa = create_loader(timm_tree / "train", 16, 4, is_training=True, auto_augment="rand-m9", device="cpu")
    assert under_aa.loader.config.color_jitter == 0.0 and under_aa.loader.config.color_jitter_prob is None
    scaled = create_loader(timm_tree / "train", 16, 4, is_training=True, scale=(0.35, 1.0), device="cpu")
    assert scaled.loader.config.crop_scale == (0.35, 1.0)
    three = create_loader(timm_tree / "train", 16, 4, is_training=True, color_jitter=(0.1, 0.2, 0.3, 0.0), device="cpu")
    assert three.loader.config.color_jitter_factors == (0.1, 0.2, 0.3)
    with pytest.raises(ValueError, match="a hue jitter"):
        create_loader(timm_tree / "train", 16, 4, is_training=True, color_jitter=(0.4, 0.4, 0.4, 0.1), device="cpu")


@pytest.mark.parametrize("num_samples, world, reps, batch_size", [
    (601, 1, 3, 12), (601, 2, 3, 12), (1000, 4, 3, 6), (300, 3, 4, 8), (200, 2, 3, 6), (200, 1, 2, 4), (2000, 8, 3, 9)])
def test_aug_repeats_keep_timms_steps_per_epoch_and_images_per_step(tmp_path, num_samples, world, reps, batch_size):
    """One process or many: the steps of timm's RepeatAugSampler (dropped last batch), batch-size / K images a step."""
    timm_steps = len(RepeatAugSampler(range(num_samples), num_replicas=world, rank=0, num_repeats=reps)) // batch_size
    distinct = repeat_aug_epoch(reps, batch_size)(num_samples, world)
    assert distinct // world // (batch_size // reps) == timm_steps
    write_color_tree(tmp_path / "train", classes=1, per_class=1)
    (image,) = (tmp_path / "train").rglob("*.jpg")
    for k in range(1, num_samples):
        os.link(image, image.with_name(f"{k:05d}.jpg"))
    for rank in range(world):
        loader = create_loader(tmp_path / "train", 16, batch_size, is_training=True, auto_augment="rand-m9-mstd0.5-inc1",
                               interpolation="bicubic", num_aug_repeats=reps, device="cpu", num_workers=1, seed=0,
                               shard_id=rank, num_shards=world)
        assert len(loader) == timm_steps
        assert (loader.loader.config.batch_size, loader.loader.config.aug_repeats) == (batch_size // reps, reps)


def test_train_and_eval_loaders_take_timms_dataset_and_data_config(timm_tree):
    train_set = create_dataset("", root=timm_tree, split="train", is_training=True)
    eval_set = create_dataset("", root=timm_tree, split="validation", is_training=False)
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    train = create_loader(train_set, (3, 24, 24), 4, is_training=True, color_jitter=0.0, interpolation="bicubic",
                          mean=mean, std=std, num_workers=0, device=torch.device("cpu"), batch_augment=2, seed=0,
                          img_dtype=torch.bfloat16, channels_last=True)
    evaluate = create_loader(eval_set, (3, 24, 24), 5, interpolation="bilinear", crop_pct=0.9, mean=mean, std=std,
                             num_workers=2, device=torch.device("cpu"), batch_augment=2)
    config = train.loader.config
    assert (config.batch_size, config.aug_repeats, config.image_size, config.interpolation) == (4, 2, 24, "bicubic")
    assert (config.mean, config.std, config.num_threads, config.recipe) == (mean, std, 1, "imagenet")
    assert train.classes == list(train_set.reader.class_to_idx)
    images, labels = next(iter(train))
    assert images.shape == (8, 3, 24, 24) and images.dtype == torch.bfloat16 and labels.shape == (8,)
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert images.float().min() >= -1.0 - 1e-2 and images.float().max() <= 1.0 + 1e-2  # (x - 0.5) / 0.5
    val = evaluate.loader.config
    assert (val.recipe, val.aug_repeats, val.resize_size, val.interpolation, val.shuffle) == ("val", 1, 26, "bilinear", False)
    assert sum(len(x) for x, _ in evaluate) == 6 and len(evaluate) == 2
    assert evaluate.dataset is eval_set and train.dataset is train_set


def test_class_map_and_labels_come_from_timms_dataset(timm_tree, tmp_path):
    (tmp_path / "map.txt").write_text("class_2\nclass_0\nclass_1\n")
    dataset = create_dataset("", root=timm_tree, split="train", is_training=True, class_map=str(tmp_path / "map.txt"))
    loader = create_loader(dataset, 16, 4, is_training=True, color_jitter=0, device="cpu", seed=0)
    assert loader.class_to_idx == dataset.reader.class_to_idx == {"class_2": 0, "class_0": 1, "class_1": 2}
    files = [str(path) for path, _ in dataset.reader.samples]
    labels = dict(dataset.reader.samples)
    _, targets = next(iter(loader))
    for i, target in zip(loader.last_indices, targets[::1].tolist()):
        assert labels[files[i]] == target


def test_mixup_is_timms_on_the_replica_batch_and_switches_off(timm_tree):
    mixup = FastCollateMixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=3)
    loader = create_loader(timm_tree / "train", 16, 6, is_training=True, auto_augment="rand-m9-mstd0.5-inc1",
                           interpolation="bicubic", num_aug_repeats=3, collate_fn=mixup, device="cpu", seed=0)
    assert loader.mixup_enabled
    images, targets = next(iter(loader))
    assert images.shape == (6, 3, 16, 16) and targets.shape == (6, 3)
    assert torch.allclose(targets.sum(1), torch.ones(6)) and targets.min() >= 0.1 / 3 - 1e-6
    loader.mixup_enabled = False  # train.py at --mixup-off-epoch
    assert not mixup.mixup_enabled and not loader.mixup_enabled
    images, targets = next(iter(loader))
    assert targets.shape == (6,) and targets.dtype == torch.int64


def test_mixup_pairs_replicas_of_different_samples(timm_tree):
    """timm's Mixup pairs i with N-1-i: with B even, never another replica of the same image."""
    mixup = FastCollateMixup(mixup_alpha=1.0, num_classes=3, label_smoothing=0.0)
    loader = create_loader(timm_tree / "train", 16, 4, is_training=True, color_jitter=0, batch_augment=3,
                           collate_fn=mixup, device="cpu", seed=0)
    clean = TimmLoader(loader.loader, None)
    images, _ = next(iter(clean))
    n = images.shape[0]
    sample = torch.arange(n) // 3
    assert (sample != sample.flip(0)).all()


@pytest.mark.parametrize("mode", ["const", "rand", "pixel"])
def test_random_erasing_is_timms_drawn_for_each_replica(timm_tree, mode):
    loader = create_loader(timm_tree / "train", 32, 4, is_training=True, color_jitter=0, batch_augment=3, re_prob=1.0,
                           re_mode=mode, device="cpu", seed=0)
    assert loader.erasing.mode == mode and loader.erasing.probability == 1.0
    images, _ = next(iter(loader))
    clean = create_loader(timm_tree / "train", 32, 4, is_training=True, color_jitter=0, batch_augment=3, device="cpu",
                          seed=0)
    reference, _ = next(iter(clean))
    changed = (images != reference).any(1)  # [N, H, W]: where a rectangle was drawn
    assert changed.flatten(1).any(1).all(), "every replica is erased at probability 1"
    boxes = [tuple(changed[i].nonzero().min(0).values.tolist()) for i in range(images.shape[0])]
    assert len(set(boxes[:3])) > 1, "the replicas of one image draw their own rectangles"


def test_eval_refuses_ranks_with_unequal_batch_counts(timm_tree, tmp_path):
    write_color_tree(tmp_path / "val7", classes=1, per_class=7)
    with pytest.raises(ValueError, match="--validation-batch-size"):
        create_loader(tmp_path / "val7", 16, 3, device="cpu", shard_id=0, num_shards=2)
    assert len(create_loader(tmp_path / "val7", 16, 4, device="cpu", shard_id=0, num_shards=2)) == 1


def test_dataset_that_is_not_an_image_folder_is_refused(tmp_path):
    class Reader:
        samples = [(object(), 0)]
        class_to_idx = {"a": 0}

    class Dataset:
        reader = Reader()

    with pytest.raises(ValueError, match="a tar of images"):
        create_loader(Dataset(), 16, 4, device="cpu")


def test_readme_maps_every_flag():
    readme = (ROOT / "README.md").read_text()
    for flag in FLAG_MAP:
        assert f"`{flag}`" in readme, f"README's timm flag table lacks {flag}"


# The lines of timm's train.py (huggingface/pytorch-image-models, main of 2026) around the README's
# change: the end of the --no-prefetcher flag, the start of main() after parsing, and the two
# create_loader calls.
TIMM_TRAIN_EXCERPT = '''\
group.add_argument('--no-prefetcher', action='store_true', default=False,
                   help='disable fast prefetcher')
group.add_argument('--output', default='', type=str, metavar='PATH',
                   help='path to output folder (default: none, current dir)')


def main():

    args.prefetcher = not args.no_prefetcher
    args.grad_accum_steps = max(1, args.grad_accum_steps)
    if args.naflex_loader and args.train_img_sizes is not None:


        # Use standard loader
        loader_train = create_loader(
            dataset_train,
            input_size=data_config['input_size'],

        else:
            # Use standard loader
            loader_eval = create_loader(
                dataset_eval,
                input_size=data_config['input_size'],
'''


def readme_diff() -> str:
    return re.search(r"```diff\n(--- a/train\.py\n\+\+\+ b/train\.py\n@@ -383.*?)```", (ROOT / "README.md").read_text(),
                     re.S).group(1)


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs the patch program")
def test_readmes_change_applies_with_patch(tmp_path):
    (tmp_path / "train.py").write_text(TIMM_TRAIN_EXCERPT)
    done = subprocess.run(["patch", "-p1", "--no-backup-if-mismatch"], input=readme_diff(), text=True,
                          capture_output=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    patched = (tmp_path / "train.py").read_text()
    assert patched.count("build_loader(") == 2 and "loader_factory(args)" in patched and "'--batch-augment'" in patched


#: The flag sets the script is run with: DeiT's (deit/main.py's defaults), "ResNet strikes back"
#: A1, A2, A3 (Wightman et al. 2021, table 1) and timm's defaults (--train-interpolation random where
#: a set names none; --color-jitter 0.4 without --aa), each with a batch this machine runs.
TRAIN_FLAG_SETS = {
    "deit": "--aa rand-m9-mstd0.5-inc1 --reprob 0.25 --remode pixel --aug-repeats 3 --mixup 0.8 --cutmix 1.0 "
            "--smoothing 0.1 --train-interpolation bicubic --model test_vit -b 6",
    "rsb-a1": "--aa rand-m7-mstd0.5-inc1 --aug-repeats 3 --mixup 0.2 --cutmix 1.0 --bce-loss --crop-pct 0.95 "
              "--model test_resnet -b 6",
    "rsb-a2": "--aa rand-m7-mstd0.5-inc1 --aug-repeats 3 --mixup 0.1 --cutmix 1.0 --bce-loss --crop-pct 0.95 "
              "--model test_resnet -b 6",
    "rsb-a3": "--aa rand-m6-mstd0.5-inc1 --mixup 0.1 --cutmix 1.0 --bce-loss --crop-pct 0.95 "
              "--model test_resnet -b 4 --batch-augment 2",
    "default": "--model test_resnet -b 4 --batch-augment 2",
}


def timm_train_script() -> Path | None:
    """timm's ``train.py`` from a clone of pytorch-image-models (``DALI_BA_TIMM_TRAIN``): timm's wheel has none."""
    path = os.environ.get("DALI_BA_TIMM_TRAIN")
    return Path(path) if path and Path(path).is_file() else None


@pytest.mark.slow
@pytest.mark.skipif(timm_train_script() is None, reason="set DALI_BA_TIMM_TRAIN to a clone's train.py (timm's wheel has none)")
@pytest.mark.skipif(shutil.which("patch") is None, reason="needs the patch program")
@pytest.mark.parametrize("name", TRAIN_FLAG_SETS)
def test_patched_timm_train_script_trains_with_each_flag_set(timm_tree, tmp_path, name):
    script = tmp_path / "train.py"
    shutil.copy(timm_train_script(), script)
    done = subprocess.run(["patch", "-p1", "--no-backup-if-mismatch"], input=readme_diff(), text=True, capture_output=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    common = ["--data-dir", timm_tree, "--num-classes", "3", "--img-size", "32", "--device", "cpu", "-j", "1",
              "--epochs", "2", "--warmup-epochs", "0", "--log-interval", "1", "--output", tmp_path / "out", "--dali-ba"]
    run = lambda *argv: subprocess.run([sys.executable, script, *map(str, common), *argv],  # noqa: E731
                                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    done = run(*TRAIN_FLAG_SETS[name].split())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    steps = {int(m) for m in re.findall(r"Train: 1 \[\s*\d+/(\d+)", done.stdout + done.stderr)}
    argv = TRAIN_FLAG_SETS[name].split()
    b = int(argv[argv.index("-b") + 1])
    expected = len(RepeatAugSampler(range(24), num_replicas=1, rank=0, num_repeats=3)) // b if "--aug-repeats" in argv else 24 // b
    assert steps == {expected}, done.stdout[-2000:] + done.stderr[-2000:]
    checkpoint = next((tmp_path / "out").rglob("last.pth.tar"))
    resumed = run(*argv, "--resume", checkpoint, "--epochs", "3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Train: 2 [" in resumed.stdout + resumed.stderr and "Train: 1 [" not in resumed.stdout + resumed.stderr



def test_flags_without_effect_are_logged_by_name(timm_tree, caplog):
    with caplog.at_level("INFO", logger="dali_ba.timm"):
        create_loader(timm_tree / "validation", 16, 2, pin_memory=True, use_prefetcher=False, device="cpu")
    assert "--pin-mem has no effect" in caplog.text and "--no-prefetcher has no effect" in caplog.text
