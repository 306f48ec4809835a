"""The val recipe against torchvision's bilinear and bicubic resize, PIL and tensor back-ends.

    .venv/bin/python benchmarks/val_interpolation.py

Nine photo-like PNGs (the fidelity test's sizes). For each of dali-ba's interpolations, the mean
absolute difference (normalized units; mean over the images, worst image in brackets) from
torchvision's Resize(256) + CenterCrop(224) with each interpolation on each back-end, and
torchvision's own PIL-vs-tensor gap for the same interpolation.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from test_fidelity import VAL_SIZES, mean_abs  # noqa: E402

from dali_ba import ImageFolderLoader  # noqa: E402
from dali_ba.recipes import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from dali_ba.synthetic import natural_image  # noqa: E402

MODES = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}


def torchvision_val(mode: str, backend: str):
    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    if backend == "pil":
        return T.Compose([T.Resize(256, interpolation=MODES[mode]), T.CenterCrop(224), T.ToTensor(), normalize])
    return T.Compose([T.PILToTensor(), T.Resize(256, interpolation=MODES[mode], antialias=True), T.CenterCrop(224),
                      T.ConvertImageDtype(torch.float32), normalize])


def main() -> None:
    root = Path(tempfile.mkdtemp())
    (root / "c").mkdir()
    rng = np.random.default_rng(0)
    for k, (w, h) in enumerate(VAL_SIZES):
        Image.fromarray(natural_image(rng, w, h)).save(root / "c" / f"{k:02d}.png")
    columns = [(m, b) for m in MODES for b in ("pil", "tensor")]
    print("dali-ba   " + "  ".join(f"vs {m}-{b:<6}" for m, b in columns) + "  torchvision pil-vs-tensor")
    for mode in MODES:
        loader = ImageFolderLoader(root, batch_size=len(VAL_SIZES), aug_repeats=1, recipe="val", device="cpu", shuffle=False,
                                   drop_last=False, interpolation=mode)
        images, _ = next(iter(loader))
        rows = []
        for k in range(len(VAL_SIZES)):
            image = Image.open(root / "c" / f"{k:02d}.png").convert("RGB")
            rows.append([mean_abs(images[k], torchvision_val(m, b)(image)) for m, b in columns]
                        + [mean_abs(torchvision_val(mode, "pil")(image), torchvision_val(mode, "tensor")(image))])
        rows = np.array(rows)
        print(f"{mode:<9} " + "  ".join(f"{mean:.5f} ({worst:.5f})" for mean, worst in zip(rows.mean(0), rows.max(0))))


if __name__ == "__main__":
    main()
