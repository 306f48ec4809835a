"""Where a step of the auto-augment recipes goes on the CPU: stage by stage, and op by op.

    .venv/bin/python benchmarks/profile_recipes.py [DATA_DIR] [--rounds 2] [--steps 8] [--only TEXT] [-M 3]

Every variant is the library's own pipeline (``build_pipeline``) fed from an in-memory cycle of
the bench's files (as ``profile_cpu.py``), B=32, 224 px, 2 DALI threads, with one thing changed,
so differences between variants are the cost of that thing:

* ``decode``: the union of each image's M crop windows decoded, the windows drawn, nothing made;
* ``imagenet, DALI``: + the M crops resized, flipped and normalized in DALI (``resample="dali"``);
* ``imagenet, torch``: the same replicas made by the torch stage instead (what a CPU loader runs);
* ``<recipe>, torch (shipped)``: the torch stage with torchvision's policy (``policies.py``), what
  a CPU loader runs for those recipes now (``nearest``: the policy's ops with that filter);
* each auto-augment recipe as the library ran it (DALI's ``auto_aug`` after the DALI crop), and
  TrivialAugment with its suite cut to one op (``excluded``: every other), so the difference to
  ``imagenet, DALI`` is that op's cost, conditional execution included; ``identity only`` is the
  cost of the conditional machinery itself;
* ``+ random_erase 0.25`` on top of trivialaugment.

The table gives each round's median ms per step and, per replica, the difference to ``imagenet,
DALI`` (B*M replicas a step). Variants run interleaved for ``--rounds`` rounds.
"""

from __future__ import annotations

import itertools

import numpy as np
from nvidia.dali import types
from nvidia.dali.auto_aug import trivial_augment

from common import median_step_ms, parse_args

from dali_ba.pipeline import build_pipeline
from dali_ba.policies import Policy
from dali_ba.recipes import RECIPES, OutputSpec, Recipe, _auto_aug
from dali_ba.resample import TorchResampler
from dali_ba.sources import scan_image_folder

B, SIZE = 32, 224
TA_OPS = [aug.name for aug in trivial_augment.get_trivial_augment_wide_suite()]
GEOMETRIC = ("translate_x", "translate_y", "shear_x", "shear_y", "rotate")


def trivial_only(name: str) -> Recipe:
    """TrivialAugment with its suite cut to ``name`` (every replica gets that op, magnitudes drawn as usual)."""
    def policy(images):
        (op,) = [aug for aug in trivial_augment.get_trivial_augment_wide_suite() if aug.name == name]
        geometric = name in GEOMETRIC  # only these take the fill and the interpolation
        options = dict(fill_value=128, interp_type=None) if geometric else {}
        return trivial_augment.apply_trivial_augment([op], images, num_magnitude_bins=31, **options)

    policy.__name__ = f"trivial_augment_wide[{name}]"
    return Recipe(f"ta-{name}", _auto_aug(policy), needs_conditionals=True, windowed=True)


def variants(m: int) -> dict:
    table = {
        "decode (M windows' union)": dict(recipe=RECIPES["imagenet"], resample="torch", torch_stage=False),
        "imagenet, DALI": dict(recipe=RECIPES["imagenet"]),
        "imagenet, torch": dict(recipe=RECIPES["imagenet"], resample="torch"),
        "trivialaugment, torch (shipped)": dict(recipe=RECIPES["trivialaugment"], resample="torch"),
        "randaugment, torch (shipped)": dict(recipe=RECIPES["randaugment"], resample="torch"),
        "autoaugment, torch (shipped)": dict(recipe=RECIPES["autoaugment"], resample="torch"),
        "trivialaugment, torch, nearest": dict(recipe=RECIPES["trivialaugment"], resample="torch", interpolation="nearest"),
        "trivialaugment": dict(recipe=RECIPES["trivialaugment"]),
        "randaugment": dict(recipe=RECIPES["randaugment"]),
        "autoaugment": dict(recipe=RECIPES["autoaugment"]),
        "trivialaugment + random_erase 0.25": dict(recipe=RECIPES["trivialaugment"], random_erase=0.25),
    }
    table.update({f"trivialaugment, {name} only": dict(recipe=trivial_only(name)) for name in TA_OPS})
    return {name: dict(v, m=m) for name, v in table.items()}


def time_pipeline(files, steps, *, recipe, m, resample="dali", torch_stage=True, random_erase=0.0, interpolation="bilinear"):
    encoded = itertools.cycle([np.fromfile(f, dtype=np.uint8) for f in files])
    labels = np.zeros(B, dtype=np.int64)
    spec = OutputSpec(SIZE, types.FLOAT, False, interpolation=interpolation)
    pipe = build_pipeline(source=lambda: ([next(encoded) for _ in range(B)], labels), recipe=recipe, aug_repeats=m,
                          spec=spec, batch_size=B, device_id=None, num_threads=2, seed=0, prefetch_queue_depth=2,
                          resample=resample, random_erase=random_erase)
    stage = None
    if resample == "torch" and torch_stage:
        policy = Policy(recipe.policy, size=SIZE, interpolation=interpolation) if recipe.policy else None
        stage = TorchResampler(spec, aug_repeats=m, batch_size=B, mean=recipe.mean, std=recipe.std, threads=2, policy=policy)
    try:
        return median_step_ms(pipe, stage, steps)
    finally:
        if stage is not None:
            stage.close()


def main():
    args = parse_args(__doc__, (("--rounds",), dict(type=int, default=2)), (("--steps",), dict(type=int, default=8)),
                      (("--only",), dict(help="run only the variants whose name contains this text")),
                      (("-M",), dict(type=int, default=3, dest="m")))
    files = scan_image_folder(args.data_dir).files[:256]
    table = {name: v for name, v in variants(args.m).items() if args.only is None or args.only in name or name == "imagenet, DALI"}
    rows = {name: [] for name in table}
    for _ in range(args.rounds):
        for name, variant in table.items():
            rows[name].append(time_pipeline(files, args.steps, **variant))
    base = float(np.median(rows["imagenet, DALI"]))
    replicas = B * args.m
    print(f"B={B}, M={args.m}, {SIZE}px, CPU, 2 DALI threads: median ms/step per round ({args.rounds} rounds, "
          f"{args.steps} steps each); ms per replica over 'imagenet, DALI'")
    for name, values in rows.items():
        extra = (float(np.median(values)) - base) / replicas
        print(f"  {name:40s} " + "  ".join(f"{v:7.0f}" for v in values) + f"   {extra:+6.2f}")


if __name__ == "__main__":
    main()
