"""The CPU resample stage against torchvision, which is the reference for what a replica is.

Inputs are made here as DALI hands them over: ragged uint8 HWC regions, int32 windows and flips,
int64 labels. Each replica must be torchvision's ``resized_crop`` (antialiased) + ``hflip`` +
``Normalize`` of the same window.
"""

import sys
import threading

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from nvidia.dali import types
from nvidia.dali.tensors import TensorListCPU

from dali_ba import ImageFolderLoader
from dali_ba.recipes import IMAGENET_MEAN, IMAGENET_STD, OutputSpec
from dali_ba.resample import BatchBuffers, TorchResampler, one_intra_op_thread, resized_window
from dali_ba.synthetic import natural_image

SIZE = 32
# (top, left, height, width): shrinking, enlarging (smaller than SIZE), a thin strip, the whole region
WINDOWS = [(10, 7, 120, 90), (40, 50, 20, 25), (0, 3, 150, 40), (0, 0, 150, 200)]


def reference(region_hwc, window, flip, dtype=torch.float32):
    """torchvision's tensor transforms on the same region and window."""
    image = torch.from_numpy(region_hwc).permute(2, 0, 1).contiguous()
    replica = TF.resized_crop(image, *window, [SIZE, SIZE], antialias=True)
    if flip:
        replica = TF.horizontal_flip(replica)
    replica = TF.to_dtype(replica, torch.float32, scale=True)
    return TF.normalize(replica, IMAGENET_MEAN, IMAGENET_STD).to(dtype)


@pytest.fixture
def regions():
    rng = np.random.default_rng(0)
    return [natural_image(rng, 200, 150), natural_image(rng, 210, 160), natural_image(rng, 201, 151)]


def dali_outputs(regions, windows, flips):
    labels = np.arange(len(regions), dtype=np.int64)[:, None].repeat(windows.shape[1], axis=1)
    return (TensorListCPU(regions, "HWC"), TensorListCPU(windows.astype(np.int32)), TensorListCPU(flips.astype(np.int32)),
            TensorListCPU(labels))


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("window", WINDOWS)
def test_a_replica_is_torchvisions_resized_crop_to_the_pixel(window, flip):
    region = natural_image(np.random.default_rng(1), 200, 150)
    ours = resized_window(torch.from_numpy(region).permute(2, 0, 1), window, flip, SIZE)
    image = torch.from_numpy(region).permute(2, 0, 1).contiguous()
    expected = TF.resized_crop(image, *window, [SIZE, SIZE], antialias=True)
    if flip:
        expected = TF.horizontal_flip(expected)
    assert ours.dtype == torch.uint8 and torch.equal(ours, expected)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_batches_are_sample_major_and_match_torchvision(regions, channels_last, dtype):
    windows = np.array([WINDOWS[:2], WINDOWS[1:3], WINDOWS[2:]])  # [B=3, M=2, 4]
    flips = np.array([[0, 1], [1, 0], [1, 1]])
    spec = OutputSpec(SIZE, types.FLOAT16 if dtype == torch.float16 else types.FLOAT, channels_last)
    resampler = TorchResampler(spec, aug_repeats=2, batch_size=3, mean=IMAGENET_MEAN, std=IMAGENET_STD, threads=2)
    try:
        images, labels = resampler(dali_outputs(regions, windows, flips))
    finally:
        resampler.close()
    assert images.shape == (6, 3, SIZE, SIZE) and images.dtype == dtype
    assert images.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    tolerance = 2e-3 if dtype == torch.float16 else 1e-5
    for k in range(6):
        sample, replica = divmod(k, 2)
        expected = reference(regions[sample], windows[sample, replica], flips[sample, replica], dtype)
        assert (images[k].float() - expected.float()).abs().max() < tolerance, f"replica {k}"


def test_a_smaller_last_batch_fills_only_its_rows(regions):
    spec = OutputSpec(SIZE, types.FLOAT, False)
    resampler = TorchResampler(spec, aug_repeats=1, batch_size=3, mean=IMAGENET_MEAN, std=IMAGENET_STD, threads=3)
    try:
        images, labels = resampler(dali_outputs(regions[:1], np.array([[WINDOWS[0]]]), np.array([[0]])))
    finally:
        resampler.close()
    assert images.shape == (1, 3, SIZE, SIZE) and labels.tolist() == [0]
    assert torch.allclose(images[0], reference(regions[0], WINDOWS[0], False), atol=1e-5)


def test_a_held_batch_is_never_reused_and_a_dropped_one_is():
    buffers = BatchBuffers((4, 8), np.float32, keep=2)
    held = torch.from_numpy(buffers.take(4))
    held.fill_(1.0)
    view = held[2:].t()  # a view keeps the buffer as busy as the batch does
    del held
    other = torch.from_numpy(buffers.take(4))
    assert not np.shares_memory(other.numpy(), view.numpy()), "a buffer still referenced by a view was handed out again"
    other.fill_(2.0)
    assert (view == 1.0).all()
    address = other.data_ptr()
    del other
    assert torch.from_numpy(buffers.take(3)).data_ptr() == address, "a dropped batch's buffer is reused"


def test_buffers_beyond_keep_are_made_but_not_kept():
    buffers = BatchBuffers((2,), np.float32, keep=1)
    first, second = buffers.take(2), buffers.take(2)  # both held: the second is new, and not kept
    assert not np.shares_memory(first, second)
    del first
    assert np.shares_memory(buffers.take(2), buffers._buffers[0])


def test_the_workers_single_thread_setting_stays_on_their_own_thread():
    before = torch.get_num_threads()
    seen = {}

    def worker():
        seen["took"] = one_intra_op_thread()
        seen["threads"] = torch.get_num_threads()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert torch.get_num_threads() == before, "the calling thread's torch threads changed"
    if sys.platform == "linux" and "ATen parallel backend: OpenMP" in torch.__config__.parallel_info():
        assert seen["took"] and seen["threads"] == 1
    else:  # no OpenMP runtime to set: nothing may have changed
        assert seen["threads"] == (1 if seen["took"] else before)


def test_random_interpolation_gives_each_replica_bilinear_or_bicubic(color_tree):
    """timm's --train-interpolation random: each replica is the bilinear or the bicubic one, both occur."""
    root, _ = color_tree
    options = dict(batch_size=4, aug_repeats=4, image_size=16, device="cpu", seed=0, resample="torch")
    made = {mode: next(iter(ImageFolderLoader(root, interpolation=mode, **options)))[0]
            for mode in ("random", "bilinear", "bicubic")}
    which = [("bilinear" if torch.equal(r, b) else "bicubic" if torch.equal(r, c) else None)
             for r, b, c in zip(made["random"], made["bilinear"], made["bicubic"])]
    assert None not in which and set(which) == {"bilinear", "bicubic"}, which


def test_random_interpolation_in_dali_is_bilinear_or_bicubic_for_each_sample():
    from nvidia.dali import fn, pipeline_def, types

    from dali_ba.recipes import OutputSpec

    images = [np.random.default_rng(k).integers(0, 255, (40, 50, 3), dtype=np.uint8) for k in range(16)]

    @pipeline_def(batch_size=16, num_threads=1, device_id=None, seed=1)
    def pipe():
        x = fn.external_source(source=lambda: images, layout="HWC", batch=True)
        resize = lambda interp: fn.resize(x, size=(16, 16), interp_type=interp, antialias=True)  # noqa: E731
        spec = OutputSpec(16, types.FLOAT, False, interpolation="random")
        return resize(spec.interp_type), resize(types.INTERP_LINEAR), resize(types.INTERP_CUBIC)

    pipeline = pipe()
    pipeline.build()
    mixed, linear, cubic = (np.stack([np.asarray(t[i]) for i in range(16)]) for t in pipeline.run())
    which = ["bilinear" if np.array_equal(m, b) else "bicubic" if np.array_equal(m, c) else None
             for m, b, c in zip(mixed, linear, cubic)]
    assert None not in which and set(which) == {"bilinear", "bicubic"}, which
