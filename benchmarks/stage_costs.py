"""Where a replica's CPU goes in the CPU loader: the resample stage's parts, timed inside the real
loader (its threads' CPU time, ``time.thread_time``), against the whole process's CPU time.

    .venv/bin/python benchmarks/stage_costs.py [--recipe randaugment] [-M 3] [--steps 25] [--root DIR]

Per replica, in ms of CPU: the crop and resize (``resample.resized_window``), the policy
(``Policy.apply``, torchvision's recipes, or timm's ``apply``), the rest of the stage's work
(normalizing, erasing, the hand-off), and the whole process (DALI's decode, reading, the main
thread); and the share of the cores the process used. B=32, 224 px, 3 warm-up steps. ``--root``
defaults to the bench's ImageNet-like data set (made once, as ``dali-ba bench`` makes it).
"""

import argparse
import collections
import os
import time

from dali_ba import ImageFolderLoader, policies, resample, timm_augment
from dali_ba.cli import default_dataset


def timed(owner, name: str, key: str, spent: collections.Counter) -> None:
    """Wraps ``owner.name`` to add its calling thread's CPU time to ``spent[key]``."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[key] += time.thread_time() - start

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", default="randaugment")
    parser.add_argument("-M", type=int, default=3)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--root", default=None)
    args = parser.parse_args()
    spent = collections.Counter()
    timed(resample, "resized_window", "crop and resize", spent)
    for policy in (policies.Policy, policies.ColorJitter, timm_augment._TimmOps):
        timed(policy, "apply", "policy", spent)
    timed(resample.TorchResampler, "_make", "stage", spent)
    loader = ImageFolderLoader(args.root or default_dataset(), batch_size=32, aug_repeats=args.M,
                               image_size=224, device="cpu", recipe=args.recipe, seed=0)
    batches = iter(loader)
    for _ in range(3):
        next(batches)
    spent.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args.steps):
        next(batches)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    replicas = args.steps * 32 * args.M
    per = {key: value / replicas * 1000 for key, value in spent.items()}
    print(f"{args.recipe}, M={args.M}: {replicas / wall:.0f} effective images/s, "
          f"{cpu / wall / (os.cpu_count() or 1):.0%} of {os.cpu_count()} cores")
    print(f"  crop and resize  {per.get('crop and resize', 0):.3f} ms a replica")
    print(f"  policy           {per.get('policy', 0):.3f}")
    print(f"  rest of stage    {per['stage'] - per.get('crop and resize', 0) - per.get('policy', 0):.3f}")
    print(f"  whole process    {cpu / replicas * 1000:.3f}")


if __name__ == "__main__":
    main()
