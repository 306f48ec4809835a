"""Resample stage on the CPU: each replica cut from its decoded region, resized, flipped and normalized by torch.

Sits between the DALI pipeline and the loader when the loader runs on the CPU with a recipe that
starts with a random-resized crop and a flip (``imagenet``, and ``trivialaugment``,
``randaugment``, ``autoaugment``, whose torchvision policy ``policies.py`` then applies to each
replica before it is normalized). DALI still does everything up to the pixels:
it draws the M crop windows and flips per image (``windows.py``) and decodes the union of the
windows once per file (``decode.py``). Its outputs per sample are that decoded region (uint8
``HWC``, any size), the M windows in the region's coordinates and the M flips; this stage turns
them into the replicas of the replica contract.

Why torch here: on the CPU a replica's cost was DALI's antialiased resize, and torch's uint8 kernel
(the one torchvision's tensor transforms use) does the same resize several times faster; on a GPU
the replicas stay in DALI (``replicate.py``), whose GPU resize is fast and keeps the data on the
device. Two details are each worth a few percent of a step on the 2-core machine: the worker
threads run torch's ops on one OpenMP thread each (:func:`one_intra_op_thread`), so that torch's
thread teams do not spin on the cores DALI's threads decode on; and batches are written into
recycled buffers (:class:`BatchBuffers`) rather than fresh memory, whose pages fault in on first
write. The measurements: ``benchmarks/README.md``, "CPU results".
"""

from __future__ import annotations

import ctypes
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from nvidia.dali import types

from .policies import Policy
from .recipes import RANDOM, RANDOM_CHOICES, OutputSpec

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float16: np.float16}


def resized_window(region: torch.Tensor, window, flip: int, size: int, mode: str = "bilinear") -> torch.Tensor:
    """One replica: ``window`` of ``region`` resized to ``size x size``, mirrored if ``flip``.

    This is torchvision's ``resized_crop(region, top, left, height, width, [size, size],
    antialias=True)`` followed by ``hflip``, on uint8 (bilinear, antialiased when shrinking). The
    window is made contiguous in channels-last order first: torch's fast uint8 kernel takes only
    that layout and otherwise falls back to a path several times slower.

    Args:
        region: uint8 ``[3, H, W]`` view of a decoded ``HWC`` image (channels-last strides), CPU.
        window: ``(top, left, height, width)`` in ``region``'s pixels.
        flip: 1 mirrors the replica horizontally, 2 vertically, 3 both (``True`` is 1).
        size: Output side.
        mode: ``"bilinear"``, ``"bicubic"`` (both antialiased, as torchvision's tensor resize) or
            ``"nearest"``.

    Returns:
        uint8 ``[3, size, size]`` with channels-last strides.
    """
    top, left, height, width = window
    crop = region[None, :, top : top + height, left : left + width].contiguous(memory_format=torch.channels_last)
    if mode == "nearest":  # torchvision's tensor NEAREST is interpolate's "nearest", never antialiased
        replica = F.interpolate(crop, size=(size, size), mode="nearest")[0]
    else:
        replica = F.interpolate(crop, size=(size, size), mode=mode, antialias=True, align_corners=False)[0]
    if flip & 1:
        replica = replica.flip(-1)
    return replica.flip(-2) if flip & 2 else replica


class BatchBuffers:
    """Output batches in recycled memory: a buffer is reused only once nothing refers to it.

    A batch handed to the training loop is a tensor over one of these numpy buffers; the tensor,
    and every view or DLPack export of it, keeps the buffer referenced. So a buffer whose only
    reference is this pool's holds no batch anyone can still see, and it is written again without
    the page faults of fresh memory. When every kept buffer is in use (the caller holds many
    batches) a new one is made; at most ``keep`` are kept.

    Args:
        shape: Shape of a full batch.
        dtype: numpy dtype.
        keep: Buffers kept for reuse.
    """

    def __init__(self, shape: tuple[int, ...], dtype, *, keep: int = 4):
        self._shape, self._dtype, self._keep = shape, dtype, keep
        self._buffers: list[np.ndarray] = []

    def take(self, rows: int) -> np.ndarray:
        """A buffer for a batch of ``rows`` (at most the full batch), free to overwrite."""
        for i in range(len(self._buffers)):
            if sys.getrefcount(self._buffers[i]) == 2:  # this list and getrefcount's argument
                return self._buffers[i][:rows]
        buffer = np.empty(self._shape, self._dtype)
        if len(self._buffers) < self._keep:
            self._buffers.append(buffer)
        return buffer[:rows]


class TorchResampler:
    """Makes the replicas of a batch from DALI's regions, windows and flips, on ``threads`` threads.

    Args:
        spec: Output size, dtype and layout.
        aug_repeats: M.
        batch_size: Largest batch (B).
        mean: Per-channel mean, 0-1 scale.
        std: Per-channel standard deviation, 0-1 scale.
        threads: Worker threads; each makes the replicas of a contiguous run of samples.
        policy: A torchvision auto-augment policy for each replica after its crop and flip, or ``None``.
        seed: Seed of the policy's draws (made batch by batch, in order, on the calling thread).
    """

    def __init__(self, spec: OutputSpec, *, aug_repeats: int, batch_size: int, mean, std, threads: int,
                 policy: Policy | None = None, seed: int = 0):
        self._size = spec.image_size
        self._mode = spec.interpolation
        self._aug_repeats = aug_repeats
        self._channels_last = spec.channels_last
        self._dtype = torch.float16 if spec.dtype == types.FLOAT16 else torch.float32
        side = (self._size, self._size)
        shape = (batch_size * aug_repeats, *side, 3) if spec.channels_last else (batch_size * aug_repeats, 3, *side)
        self._buffers = BatchBuffers(shape, _NUMPY_DTYPES[self._dtype])
        # Normalizing is x * scale + shift on each replica while it is in cache: (x - 255 m) / (255 s).
        self._scale = (1.0 / (255.0 * torch.tensor(std, dtype=torch.float32))).view(3, 1, 1)
        self._shift = (-torch.tensor(mean, dtype=torch.float32) / torch.tensor(std, dtype=torch.float32)).view(3, 1, 1)
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._policy = policy
        self._rng = np.random.default_rng(seed)

    def __call__(self, outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images [N, ...], labels [N])`` from the pipeline's ``(regions, windows, flips[, erase], labels)``.

        ``regions``: B uint8 ``HWC`` images of any size; ``windows``: int32 ``[B, M, 4]`` as
        ``(top, left, height, width)`` in each region; ``flips``: int32 ``[B, M]``; ``erase``
        (random erasing only): int32 ``[B, M, 4]`` rectangles set to 0 after normalizing, height
        0 for none; ``labels``: int64 ``[B, M]``. N is B*M, in sample-major order.
        """
        regions, windows, flips, *erase, labels = outputs
        windows = np.asarray(windows.as_tensor()).reshape(-1, 4).tolist()
        flips = np.asarray(flips.as_tensor()).reshape(-1).tolist()
        erase = np.asarray(erase[0].as_tensor()).reshape(-1, 4).tolist() if erase else None
        samples = len(regions)
        modes = None
        if self._mode == RANDOM:  # timm's --train-interpolation random: bilinear or bicubic, each replica its own
            modes = [RANDOM_CHOICES[i] for i in self._rng.integers(len(RANDOM_CHOICES), size=samples * self._aug_repeats)]
        ops = self._policy.draw(self._rng, samples * self._aug_repeats) if self._policy is not None else None
        images = torch.from_numpy(self._buffers.take(samples * self._aug_repeats))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="dali-ba-resample", initializer=one_intra_op_thread)
        bounds = np.linspace(0, samples, min(self._threads, samples) + 1).astype(int)
        jobs = [
            self._pool.submit(self._make, regions, windows, flips, erase, ops, modes, images, first, last)
            for first, last in zip(bounds[:-1], bounds[1:])
        ]
        for job in jobs:
            job.result()
        if self._channels_last:
            images = images.permute(0, 3, 1, 2)  # [N, H, W, C] memory viewed as NCHW, channels-last strides
        return images, torch.from_dlpack(labels.as_tensor()).view(-1)

    def close(self, *, wait: bool = True) -> None:
        """Ends the worker threads (``wait``: as ``reader.ReadAhead.close``)."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
            self._pool = None

    def _make(self, regions, windows, flips, erase, ops, modes, images, first: int, last: int) -> None:
        # float16 output is normalized in float32 here first, so that it is rounded only once.
        scratch = None if self._dtype == torch.float32 else torch.empty(3, self._size, self._size)
        for sample in range(first, last):
            region = torch.from_numpy(np.asarray(regions[sample])).permute(2, 0, 1)
            for k in range(sample * self._aug_repeats, (sample + 1) * self._aug_repeats):
                out = images[k].permute(2, 0, 1) if self._channels_last else images[k]
                normalized = out if scratch is None else scratch
                replica = resized_window(region, windows[k], flips[k], self._size, modes[k] if modes else self._mode)
                if ops is not None and ops[k]:  # the policy, on the HWC memory of the channels-last replica
                    hwc = replica.permute(1, 2, 0).numpy()
                    augmented = self._policy.apply(hwc, ops[k])
                    if augmented is not hwc:
                        replica = torch.from_numpy(augmented).permute(2, 0, 1)
                normalized.copy_(replica)
                normalized.mul_(self._scale).add_(self._shift)
                if erase is not None and erase[k][2]:  # random erasing: the rectangle is 0 after normalizing
                    top, left, height, width = erase[k]
                    normalized[:, top:top + height, left:left + width] = 0
                if scratch is not None:
                    out.copy_(scratch)


def one_intra_op_thread() -> bool:
    """Makes torch's ops on the calling thread run on that thread alone; other threads keep theirs.

    ``torch.set_num_threads`` would do it for the whole process, the user's training thread and
    MKL included. OpenMP's team size is a per-thread setting, so this sets it on the calling
    thread only, after torch's first parallel op there (which sets it from torch's global count).

    Returns:
        Whether it took effect (``torch.get_num_threads()`` is now 1 on this thread). Where torch
        does not run on an OpenMP runtime found here, nothing changes: slower, not wrong.
    """
    torch.ones(1 << 16).add_(1)  # torch initialises this thread's team size at its first parallel op
    for runtime in _openmp_runtimes():
        runtime.omp_set_num_threads(1)
        if torch.get_num_threads() == 1:  # torch's OpenMP back-end reports this thread's team size
            return True
    return torch.get_num_threads() == 1


def _openmp_runtimes():
    """The OpenMP libraries loaded in this process (``libgomp``, ``libiomp5``, ``libomp``), as ctypes handles."""
    try:
        with open("/proc/self/maps") as maps:
            loaded = sorted({line.split()[-1] for line in maps if "/lib" in line})
    except OSError:
        return
    for path in loaded:
        if path.rsplit("/", 1)[-1].startswith(("libgomp", "libiomp5", "libomp")):
            try:
                yield ctypes.CDLL(path)
            except OSError:
                continue
