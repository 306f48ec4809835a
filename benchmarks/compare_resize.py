"""One replica's resampling on one CPU core: DALI's resize against torch's kernel (and PIL's), same windows.

    .venv/bin/python benchmarks/compare_resize.py [DATA_DIR] [--images 64] [--rounds 3]

Decodes ``--images`` of the data set once, draws 4 windows per image with torchvision's
``RandomResizedCrop.get_params``, then makes the 224 px replicas (crop, antialiased bilinear
resize, flip, normalize to float32) three ways, each on one thread:
- DALI: ``fn.resize`` with the window as its region of interest and ``crop_mirror_normalize``,
  as the ``resample="dali"`` path does; the time of the same pipeline without them is subtracted;
- torch: ``dali_ba.resample.resized_window`` and the in-place normalize of the ``"torch"`` path;
- PIL: ``Image.resize(box=...)``, what torchvision's PIL transforms call (no normalize).
Prints milliseconds per replica per round. Without DATA_DIR it uses ``dali-ba bench``'s cached set.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import torch
import torchvision.transforms as T
from nvidia.dali import fn, pipeline_def, types
from PIL import Image

from dali_ba.dataset import scan_image_folder
from dali_ba.recipes import IMAGENET_MEAN, IMAGENET_STD
from dali_ba.resample import one_intra_op_thread, resized_window

SIZE, M = 224, 4


def dali_seconds(images, windows, flips, with_resize: bool) -> float:
    @pipeline_def(batch_size=len(images), num_threads=1, device_id=None, exec_dynamic=True, prefetch_queue_depth=1)
    def replicas():
        decoded = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        out = []
        for r in range(M):
            start = fn.external_source(source=lambda r=r: [w[r, :2].astype(np.float32) for w in windows], batch=True)
            end = fn.external_source(source=lambda r=r: [(w[r, :2] + w[r, 2:]).astype(np.float32) for w in windows], batch=True)
            if not with_resize:
                out.append(fn.crop(decoded, crop=(1, 1)))
                continue
            resized = fn.resize(decoded, size=(SIZE, SIZE), roi_start=start, roi_end=end, roi_relative=False,
                                interp_type=types.INTERP_LINEAR, antialias=True)
            out.append(fn.crop_mirror_normalize(resized, dtype=types.FLOAT, output_layout="CHW", mirror=flips[r],
                                                mean=[m * 255 for m in IMAGENET_MEAN], std=[s * 255 for s in IMAGENET_STD]))
        return tuple(out)

    pipe = replicas()
    pipe.build()
    pipe.run()
    start = time.perf_counter()
    pipe.run()
    return time.perf_counter() - start


def torch_seconds(images, windows, flips) -> float:
    scale = (1.0 / (255.0 * torch.tensor(IMAGENET_STD))).view(3, 1, 1)
    shift = (-torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)).view(3, 1, 1)
    out = torch.empty(len(images) * M, 3, SIZE, SIZE)
    took = []

    def run():
        one_intra_op_thread()
        for _ in range(2):  # the first pass faults the output's pages in
            start = time.perf_counter()
            for i, image in enumerate(images):
                region = torch.from_numpy(image).permute(2, 0, 1)
                for r in range(M):
                    target = out[i * M + r]
                    target.copy_(resized_window(region, windows[i][r].tolist(), bool(flips[r] and i % 2), SIZE))
                    target.mul_(scale).add_(shift)
            took.append(time.perf_counter() - start)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return took[-1]


def pil_seconds(pictures, windows) -> float:
    start = time.perf_counter()
    for picture, image_windows in zip(pictures, windows):
        for top, left, height, width in image_windows.tolist():
            picture.resize((SIZE, SIZE), Image.BILINEAR, box=(left, top, left + width, top + height))
    return time.perf_counter() - start


def main():
    from dali_ba.cli import default_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = scan_image_folder(args.data_dir or default_dataset()).files[: args.images]
    pictures = [Image.open(f).convert("RGB") for f in files]
    images = [np.array(p) for p in pictures]
    torch.manual_seed(0)
    windows = [np.array([T.RandomResizedCrop.get_params(p, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(M)], dtype=np.int32)
               for p in pictures]
    flips = [r % 2 == 1 for r in range(M)]
    replicas = len(images) * M
    rows = {"DALI fn.resize + crop_mirror_normalize": [], "torch resized_window + normalize": [], "PIL resize(box=)": []}
    for _ in range(args.rounds):
        dali = dali_seconds(images, windows, flips, True) - dali_seconds(images, windows, flips, False)
        rows["DALI fn.resize + crop_mirror_normalize"].append(dali)
        rows["torch resized_window + normalize"].append(torch_seconds(images, windows, flips))
        rows["PIL resize(box=)"].append(pil_seconds(pictures, windows))
    print(f"{len(images)} images x {M} windows, {SIZE} px, one thread; ms per replica, each round")
    for name, seconds in rows.items():
        print(f"  {name:40s} " + "  ".join(f"{1000 * s / replicas:6.3f}" for s in seconds))


if __name__ == "__main__":
    main()
