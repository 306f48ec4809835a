"""What each op of torchvision's auto-augment policies costs on one replica, on one thread: the
shipped path (``policies.Policy.apply``) against torchvision's ``_apply_op`` on PIL.

    .venv/bin/python benchmarks/policy_ops.py [--size 224] [--rounds 3] [--interpolation bilinear] [--alone]

Per op, the median over ``--rounds`` rounds of the mean ms per call (a photo-like replica, the
magnitudes drawn as each policy draws them); then the mean ms per replica of each policy, its
op mix included. Both sides start and end with a uint8 HWC array, as the resample stage holds it.
Each op's calls alternate between the two sides, as a replica's ops alternate with other work in
the stage; ``--alone`` runs each op's calls back to back instead, one side after the other.
``--timm RECIPE`` (e.g. ``rand-m9-mstd0.5-inc1``) adds timm's RandAugment: the shipped path
(``timm_augment.py``) against timm's own ``rand_augment_transform`` on PIL, per replica.
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
    parser.add_argument("--timm", help="also time timm's RandAugment written this way (rand-m9-mstd0.5-inc1)")
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
    if args.timm:
        shipped, theirs = timm_per_replica(image, args.timm, args.interpolation, args.rounds)
        print(f"\n| timm {args.timm}, mean per replica | shipped ms | timm (PIL) ms |\n|---|---:|---:|\n"
              f"| {args.timm} | {shipped:.3f} | {theirs:.3f} |")


def timm_per_replica(image, recipe: str, interpolation: str, rounds: int, count: int = 600) -> tuple[float, float]:
    """Median over ``rounds`` of the mean ms a replica: ``TimmRandAugment`` against timm's own
    transform, with the hyper-parameters timm's ``transforms_factory`` gives it (its 0-bit
    Posterize made black, as Pillow 13 refuses it)."""
    from timm.data.auto_augment import rand_augment_transform
    from timm.data.transforms import str_to_pil_interp

    from dali_ba.recipes import IMAGENET_MEAN
    from dali_ba.timm_augment import TimmRandAugment

    ours = TimmRandAugment(recipe, mean=IMAGENET_MEAN, interpolation=interpolation)
    theirs = rand_augment_transform(recipe, {"translate_const": int(min(image.shape[:2]) * 0.45),
                                             "img_mean": tuple(min(255, round(255 * x)) for x in IMAGENET_MEAN),
                                             "interpolation": str_to_pil_interp(interpolation)})
    for op in theirs.ops:  # timm 1.0.31 asks Pillow 13 for 0 bits, which it refuses: black, as dali-ba gives
        if op.name.startswith("Posterize"):
            op.aug_fn = lambda img, bits, _posterize=op.aug_fn, **kwargs: (
                Image.new(img.mode, img.size) if bits <= 0 else _posterize(img, bits, **kwargs))
    times = collections.defaultdict(list)
    for _ in range(rounds):
        draws = ours.draw(np.random.default_rng(3), count)
        start = time.perf_counter()
        for ops in draws:
            ours.apply(image, ops)
        times["shipped"].append((time.perf_counter() - start) / count * 1000)
        start = time.perf_counter()
        for _ in range(count):
            np.array(theirs(Image.fromarray(image)))
        times["timm"].append((time.perf_counter() - start) / count * 1000)
    return statistics.median(times["shipped"]), statistics.median(times["timm"])


if __name__ == "__main__":
    main()
