"""torch-once at M=4 with DataLoader workers started by ``fork`` and by ``forkserver``, side by side.

    .venv/bin/python benchmarks/check_worker_start.py [DATA_DIR] [--rounds 2]

Both in one process whose DALI threads are running (a dali-ba loader is mid-epoch), as in a
``dali-ba bench`` run; prints effective images/s per round. It asks whether the start method
changes the baseline's speed (it is a deadlock hazard either way: the bench uses forkserver).
"""

from __future__ import annotations

import argparse

import torch

import dali_ba.bench.loaders as loaders
from dali_ba.bench.runner import BenchConfig, run_one
from dali_ba.dataset import scan_image_folder
from dali_ba.loader import ImageFolderLoader


def started_by(context: str):
    def data_loader(dataset, spec, batch_size, **kwargs):
        return torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, num_workers=spec.workers, persistent_workers=True, drop_last=True,
            generator=torch.Generator().manual_seed(spec.seed), multiprocessing_context=context, **kwargs,
        )

    return data_loader


def main():
    from dali_ba.cli import default_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    root = args.data_dir or default_dataset()
    index = scan_image_folder(root)
    config = BenchConfig(data_dir=str(root), loaders=("torch-once",), device="cpu")
    running = iter(ImageFolderLoader(root, batch_size=32, aug_repeats=4, device="cpu", seed=0))
    for _ in range(5):
        next(running)  # DALI's threads are up in this process from here on
    for round_ in range(args.rounds):
        for context in ("fork", "forkserver"):
            loaders._data_loader = started_by(context)
            result = run_one(config, "torch-once", 4, index)
            print(f"round {round_ + 1}, {context:10s}: torch-once M=4 {result.effective_images_per_s:.0f} effective images/s")


if __name__ == "__main__":
    main()
