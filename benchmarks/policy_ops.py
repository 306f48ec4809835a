"""What each op of torchvision's auto-augment policies costs on one replica, on one thread: the
shipped path (``policies.Policy.apply``) against torchvision's ``_apply_op`` on PIL.

    .venv/bin/python benchmarks/policy_ops.py [--size 224] [--rounds 3] [--interpolation bilinear] [--alone]

Per op, the median over ``--rounds`` rounds of the mean ms per call (a photo-like replica, the
magnitudes drawn as each policy draws them); then the mean ms per replica of each policy, its
op mix included. Both sides start and end with a uint8 HWC array, as the resample stage holds it.
Each op's calls alternate between the two sides, as a replica's ops alternate with other work in
the stage; ``--alone`` runs each op's calls back to back instead, one side after the other.
"""

import argparse
import collections
import statistics
import time

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as aa

from dali_ba.policies import POLICIES, Policy
from dali_ba.synthetic import natural_image


def torchvision_apply(image, ops, mode):
    picture = Image.fromarray(image)
    for op, magnitude in ops:
        picture = aa._apply_op(picture, op, magnitude, mode, None)
    return np.array(picture)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interpolation", default="bilinear")
    parser.add_argument("--alone", action="store_true", help="time each op's calls back to back, side by side")
    args = parser.parse_args()
    torch.set_num_threads(1)
    image = natural_image(np.random.default_rng(0), args.size, args.size)
    mode = InterpolationMode(args.interpolation)
    ways = {"shipped": lambda p, ops: p.apply(image, ops), "torchvision": lambda p, ops: torchvision_apply(image, ops, mode)}
    per_op = collections.defaultdict(list)  # (op, way) -> [ms per round]
    per_policy = collections.defaultdict(list)
    for _ in range(args.rounds):
        for name in POLICIES:
            policy = Policy(name, size=args.size, interpolation=args.interpolation)
            draws = policy.draw(np.random.default_rng(1), 600)
            for way, apply in ways.items():
                start = time.perf_counter()
                for ops in draws:
                    apply(policy, ops)
                per_policy[name, way].append((time.perf_counter() - start) / len(draws) * 1000)
        policy = Policy("trivialaugment", size=args.size, interpolation=args.interpolation)
        timings = collections.defaultdict(list)
        draws = policy.draw(np.random.default_rng(2), 1400)
        if args.alone:  # one op's calls back to back, one side, then the other
            by_op = collections.defaultdict(list)
            for ops in draws:
                by_op[ops[0][0]].append(ops)
            order = [(ops, way) for group in by_op.values() for way in ways for ops in group]
        else:
            order = [(ops, way) for ops in draws for way in ways]
        for ops, way in order:
            start = time.perf_counter()
            ways[way](policy, ops)
            timings[ops[0][0], way].append(time.perf_counter() - start)
        for key, values in timings.items():
            per_op[key].append(statistics.mean(values) * 1000)
    print(f"| TrivialAugment op ({args.size} px, {args.interpolation}) | shipped ms | torchvision (PIL) ms |")
    print("|---|---:|---:|")
    for op in sorted({op for op, _ in per_op}, key=lambda op: -statistics.median(per_op[op, "torchvision"])):
        print(f"| {op} | {statistics.median(per_op[op, 'shipped']):.3f} | {statistics.median(per_op[op, 'torchvision']):.3f} |")
    print("\n| policy, mean per replica | shipped ms | torchvision (PIL) ms |")
    print("|---|---:|---:|")
    for name in POLICIES:
        print(f"| {name} | {statistics.median(per_policy[name, 'shipped']):.3f} | "
              f"{statistics.median(per_policy[name, 'torchvision']):.3f} |")


if __name__ == "__main__":
    main()
