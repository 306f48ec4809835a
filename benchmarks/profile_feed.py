"""Where the loader's step goes, end to end: DALI's run, the input callback, the hand-off to torch.

On the CPU the hand-off of the ``imagenet`` recipe is the resample stage (``resample.py``), which
makes the replicas, so it is most of the step there.

    .venv/bin/python benchmarks/profile_feed.py [DATA_DIR] [--steps 30]

Wraps the feed's three calls with timers and runs the loader (B=32, 224 px, CPU) at M=1 and M=4.
``benchmarks/profile_cpu.py`` times the same DALI graph fed from memory; the difference between
its figure and "waiting for DALI" here is what the loader's setting adds to DALI's own run.
"""

from __future__ import annotations

import argparse
import time

import dali_ba.feed as feed
import dali_ba.resample as resample
from dali_ba.loader import ImageFolderLoader

spent: dict[str, float] = {}


def timed(name: str, method):
    def wrapper(self):  # one positional argument: DALI inspects the callback's signature
        start = time.perf_counter()
        try:
            return method(self)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def main():
    from dali_ba.cli import default_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    root = args.data_dir or default_dataset()
    feed.Feed._next_outputs = timed("waiting for DALI", feed.Feed._next_outputs)
    feed.Feed._next_input = timed("input callback", feed.Feed._next_input)
    for stage in (feed.DLPackHandOff, resample.TorchResampler):  # the feed's finish stage, either kind
        call = stage.__call__
        stage.__call__ = lambda self, outputs, call=call: timed("hand-off to torch (CPU: the resample stage)",
                                                                 lambda s: call(s, outputs))(self)
    for m in (1, 4):
        loader = ImageFolderLoader(root, batch_size=32, aug_repeats=m, device="cpu", num_threads=2, seed=0)
        batches = (batch for _ in range(1000) for batch in loader)
        for _ in range(3):
            next(batches)
        spent.clear()
        start = time.perf_counter()
        for _ in range(args.steps):
            next(batches)
        total = 1000 * (time.perf_counter() - start) / args.steps
        parts = ", ".join(f"{name} {1000 * seconds / args.steps:.2f}" for name, seconds in spent.items())
        print(f"M={m}: {total:.1f} ms per step; {parts} (ms per step)")


if __name__ == "__main__":
    main()
