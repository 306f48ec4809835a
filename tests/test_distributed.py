"""torchrun with 2 CPU ranks (gloo): sharding, the training script, and resuming it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_color_tree

HERE = Path(__file__).parent
TRAIN = HERE.parent / "examples" / "train_imagenet.py"


def torchrun(*args, timeout=240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def imagenet_tree(tmp_path):
    write_color_tree(tmp_path / "imagenet" / "train", classes=3, per_class=8)
    write_color_tree(tmp_path / "imagenet" / "val", classes=3, per_class=3)
    return tmp_path / "imagenet"


@pytest.mark.slow
def test_two_ranks_read_disjoint_shards_that_cover_the_data(tmp_path):
    data = tmp_path / "data"
    files = set(write_color_tree(data))
    torchrun(HERE / "shard_probe.py", data, tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["shard"] for r in ranks] == [[0, 2], [1, 2]]
    assert ranks[0]["seed"] == ranks[1]["seed"], "rank 0's seed is broadcast, so the shards agree"
    seen = [set(r["files"]) for r in ranks]
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == files
    for r in ranks:  # a sample's M replicas stay on its rank
        assert all(r["files"].count(f) == 2 for f in set(r["files"]))


@pytest.mark.slow
def test_training_runs_on_two_ranks_and_resumes_mid_epoch(imagenet_tree, tmp_path):
    common = [TRAIN, imagenet_tree, "--arch", "resnet18", "-b", "2", "-M", "2", "--image-size", "32", "--device", "cpu",
              "-j", "1", "--output-dir", tmp_path / "out", "--epochs", "1", "--print-freq", "1"]
    first = torchrun(*common, "--max-steps", "2")
    assert "2 rank(s) on cpu" in first and "6 steps per epoch" in first  # 24 images / 2 ranks / B=2
    assert "stopping after 2 steps" in first
    resumed = torchrun(*common, "--resume", tmp_path / "out" / "checkpoint.pth")
    assert "resumed from" in resumed and "epoch 0, batch 2 of 6" in resumed
    # The rest of the epoch: 4 batches x 2 images x M=2 x 2 ranks = 32 images, none twice.
    assert "(32 images)" in resumed
    assert "Test: Acc@1" in resumed and "(9 images)" in resumed  # every val image exactly once


def test_training_script_runs_with_the_torchvision_backend(imagenet_tree, tmp_path):
    done = subprocess.run(
        [sys.executable, TRAIN, imagenet_tree, "--data-backend", "torchvision", "--arch", "resnet18", "-b", "4", "-M", "2",
         "--image-size", "32", "--device", "cpu", "-j", "0", "--epochs", "1", "--output-dir", tmp_path],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(48 images)" in done.stdout and "Test: Acc@1" in done.stdout and (tmp_path / "checkpoint.pth").exists()


def test_imagenet_loaders_pair_train_and_val(imagenet_tree):
    from dali_ba import imagenet_loaders

    train, val = imagenet_loaders(imagenet_tree, batch_size=4, aug_repeats=2, image_size=16, device="cpu", seed=0)
    assert (len(train), len(val), train.config.recipe, val.config.recipe) == (6, 2, "imagenet", "val")
    assert sum(len(labels) for _, labels in val) == 9
    assert train.sampler is train and len(train.dataset) == 24 and train.batch_size == 4


def test_imagenet_loaders_name_the_missing_split(tmp_path):
    from dali_ba import imagenet_loaders

    write_color_tree(tmp_path / "train")
    with pytest.raises(FileNotFoundError, match=r"val.*root/train/<class>/ and root/val/<class>/"):
        imagenet_loaders(tmp_path, batch_size=2, aug_repeats=2, device="cpu")
