"""GPU path: nvJPEG ('mixed') decoding, augmentation on the GPU, zero-copy hand-off to torch.

Skipped cleanly where torch.cuda.is_available() is False (see conftest.py).
"""

import functools
from collections import Counter

import pytest
import torch
from conftest import identify, small_loader

from dali_ba import ImageFolderLoader

pytestmark = pytest.mark.gpu


make = functools.partial(small_loader, ImageFolderLoader, batch_size=4, aug_repeats=3, device="cuda", num_threads=None)


def test_batches_are_on_the_gpu_in_the_replica_contract(color_tree):
    root, truth = color_tree
    images, labels = next(iter(make(root)))
    assert images.is_cuda and labels.is_cuda
    assert images.shape == (12, 3, 16, 16) and labels.dtype == torch.int64
    files = identify(images.cpu(), truth)
    assert all(len(set(files[3 * s : 3 * s + 3])) == 1 for s in range(4))
    assert not torch.equal(images[0], images[1])


def test_every_image_once_per_epoch_on_the_gpu(color_tree):
    root, truth = color_tree
    loader = make(root, batch_size=5, aug_repeats=2, drop_last=False, recipe="val")
    for _ in range(2):
        counts = Counter(f for images, _ in loader for f in identify(images.cpu(), truth))
        assert set(counts) == set(truth) and set(counts.values()) == {2}


def test_delivered_batches_survive_later_batches(color_tree):
    root, _ = color_tree
    loader = make(root, batch_size=3, drop_last=False)
    kept = [(images, images.clone()) for _ in range(3) for images, _ in loader]
    torch.cuda.synchronize()
    assert all(torch.equal(live, copy) for live, copy in kept)


def test_gpu_memory_does_not_grow_across_epochs(color_tree):
    root, _ = color_tree
    loader = make(root, batch_size=4, aug_repeats=4, image_size=64)
    used = []
    for _ in range(6):
        for images, _ in loader:
            images.sum().item()
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        used.append(total - free)
    assert used[-1] <= used[1] + 64 * 2**20, [u / 2**20 for u in used]


@pytest.mark.parametrize("recipe", ["imagenet", "cifar", "randaugment", "trivialaugment", "autoaugment", "val",
                                    "rand-m9-mstd0.5-inc1"])
def test_every_recipe_runs_on_the_gpu(color_tree, recipe):
    root, _ = color_tree
    images, _ = next(iter(make(root, recipe=recipe, dtype=torch.float16, channels_last=True)))
    assert images.is_cuda and images.dtype == torch.float16 and torch.isfinite(images).all()


def test_bench_runs_gpu_loaders(color_tree, tmp_path):
    from click.testing import CliRunner

    from dali_ba.cli import main

    root, _ = color_tree
    result = CliRunner().invoke(main, ["bench", str(root), "-M", "1,2", "-b", "2", "--steps", "3", "--warmup", "1",
                                       "--image-size", "32", "--model", "resnet18", "--device", "cuda",
                                       "--loaders", "dali-ba,dali-large,torch-gpu,synthetic"])
    assert result.exit_code == 0, result.output
    assert "GPU MiB" in result.output


def test_region_decode_follows_the_probes_verdict_on_this_gpu(color_tree):
    from dali_ba.decode_probe import probe_verdict

    root, _ = color_tree
    verdict = probe_verdict("region", "cuda:0")
    loader = make(root, recipe="imagenet")
    assert loader.roi_decode is verdict.works
    images, _ = next(iter(loader))
    assert images.is_cuda and torch.isfinite(images).all()


@pytest.mark.parametrize("recipe", ["imagenet", "randaugment"])
def test_random_erasing_and_bicubic_run_on_the_gpu(color_tree, recipe):
    root, _ = color_tree
    loader = make(root, recipe=recipe, aug_repeats=8, image_size=32, random_erase=1.0, interpolation="bicubic",
                  ra_magnitude=15 if recipe == "randaugment" else 9)
    images, _ = next(iter(loader))
    erased = (images == 0).all(dim=1).flatten(1).any(dim=1).float().mean().item()
    assert images.is_cuda and erased > 0.9, erased


def test_timms_ops_on_the_gpu_are_the_cpus():
    """timm_graph's ops run the same arithmetic on the GPU: each op's GPU output against its CPU one
    (one pipeline a device, every op an output of it)."""
    import numpy as np
    from nvidia.dali import fn, pipeline_def

    from dali_ba.synthetic import natural_image
    from dali_ba.timm_augment import ALL_OPS
    from dali_ba.timm_graph import apply_op

    photos = [natural_image(np.random.default_rng(k), 48, 48) for k in range(4)]

    def run(gpu):
        @pipeline_def(batch_size=4, num_threads=2, device_id=0 if gpu else None, enable_conditionals=True)
        def pipe():
            images = fn.external_source(source=lambda: photos, layout="HWC", batch=True)
            images = images.gpu() if gpu else images
            return tuple(apply_op(images, name, 7.0, -1, fill=(124, 116, 104), interpolation="bilinear", size=48)
                         for name in ALL_OPS)

        pipeline = pipe()
        pipeline.build()
        outputs = pipeline.run()
        return [np.stack([np.asarray((out.as_cpu() if gpu else out)[i]) for i in range(4)]).astype(int) for out in outputs]

    for name, on_gpu, on_cpu in zip(ALL_OPS, run(True), run(False)):
        diff = np.abs(on_gpu - on_cpu)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.05, f"{name}: max {diff.max()}, {(diff > 0).mean():.3f} differ"


def test_timms_train_options_run_on_the_gpu(color_tree):
    root, _ = color_tree
    for options in (dict(recipe="imagenet", color_jitter=0.4, color_jitter_prob=0.8, interpolation="random",
                         crop_scale=(0.35, 1.0), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
                    dict(recipe="rand-m9-mstd0.5-inc1", interpolation="random")):
        images, _ = next(iter(make(root, **options)))
        assert images.is_cuda and torch.isfinite(images).all(), options
