"""Whether each auto-augment op runs in parallel on the resample stage's threads: the shipped path
(``policies.Policy.apply``) against torchvision's ``_apply_op`` on PIL, on one thread and on two.

    .venv/bin/python benchmarks/op_threads.py [--size 224] [--seconds 0.5] [--rounds 3]

The resample stage (``dali_ba/resample.py``) runs the policies on threads of one process, so an op
that holds Python's interpreter lock runs on one core at a time however many threads there are;
torchvision's DataLoader runs the same ops in worker processes and has no such limit. Per op: ms
per call on one thread, then the speed-up of two threads each making the same calls at once
(about ``--seconds`` of them)
(2.0: fully parallel; 1.0 or less: serialized, or slowed by the threads' contention for the lock).
Medians over ``--rounds`` rounds, 224 px, bilinear, the arrays converted to PIL and back on
torchvision's side as the stage would. Run it on an otherwise quiet machine with 2 or more cores.
"""

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as aa

from dali_ba.policies import Policy
from dali_ba.synthetic import natural_image

#: An op of TrivialAugment's space and a magnitude within it.
OPS = (("Identity", 0.0), ("Brightness", 0.5), ("Color", 0.5), ("Contrast", 0.5), ("Sharpness", 0.5),
       ("AutoContrast", 0.0), ("Equalize", 0.0), ("Posterize", 4.0), ("Solarize", 128.0),
       ("ShearX", 0.3), ("ShearY", 0.3), ("TranslateX", 12.0), ("Rotate", 20.0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seconds", type=float, default=0.5, help="about how long one thread's calls take")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    image = natural_image(np.random.default_rng(0), args.size, args.size)
    policy = Policy("trivialaugment", size=args.size)
    mode = InterpolationMode.BILINEAR

    def torchvision(op, magnitude):
        return np.array(aa._apply_op(Image.fromarray(image), op, magnitude, mode, None))

    ways = {"shipped": lambda op, magnitude: policy.apply(image, [(op, magnitude)]), "torchvision": torchvision}
    pool = ThreadPoolExecutor(2)
    print(f"| op ({args.size} px, bilinear) | shipped ms | 2 threads | torchvision (PIL) ms | 2 threads |")
    print("|---|---:|---:|---:|---:|")
    for op, magnitude in OPS:
        cells = []
        for apply in ways.values():
            start = time.perf_counter()
            apply(op, magnitude)  # warm, and a first guess of a call's time
            count = max(10, int(args.seconds / max(time.perf_counter() - start, 1e-6)))

            def calls(_=None, apply=apply, op=op, magnitude=magnitude, count=count):
                for _ in range(count):
                    apply(op, magnitude)

            one, speedup = [], []
            for _ in range(args.rounds):
                start = time.perf_counter()
                calls()
                alone = time.perf_counter() - start
                start = time.perf_counter()
                list(pool.map(calls, range(2)))
                together = time.perf_counter() - start
                one.append(alone / count * 1000)
                speedup.append(2 * alone / together)
            cells += [f"{statistics.median(one):.3f}", f"{statistics.median(speedup):.2f}x"]
        print(f"| {op} | " + " | ".join(cells) + " |")
    pool.shutdown()


if __name__ == "__main__":
    main()
