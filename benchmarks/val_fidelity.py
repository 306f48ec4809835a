"""dali-ba's ``val`` recipe against torchvision's ``Resize(256) + CenterCrop(224)``, image by image.

    .venv/bin/python benchmarks/val_fidelity.py

Photo-like images (``synthetic.natural_image``) in 10 sizes, written as PNG so that no decoder
difference enters. For each: the mean absolute difference, in normalized units, between dali-ba
and torchvision's PIL path; the same with dali-ba's output shifted by one pixel either way; and
torchvision's own PIL-vs-tensor difference, the scale against which the first is judged.
"""

import os
import tempfile

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from dali_ba import ImageFolderLoader
from dali_ba.recipes import IMAGENET_MEAN, IMAGENET_STD
from dali_ba.synthetic import natural_image

SIZES = [(500, 375), (375, 500), (333, 500), (500, 333), (640, 427), (211, 149), (255, 300), (1024, 683), (257, 257), (301, 229)]


def main():
    root = tempfile.mkdtemp()
    os.makedirs(f"{root}/c")
    rng = np.random.default_rng(0)
    for k, (w, h) in enumerate(SIZES):
        Image.fromarray(natural_image(rng, w, h)).save(f"{root}/c/{k:02d}.png")
    loader = ImageFolderLoader(root, batch_size=len(SIZES), aug_repeats=1, recipe="val", device="cpu", shuffle=False,
                               drop_last=False)
    images, _ = next(iter(loader))
    pil = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    tensor = T.Compose([T.PILToTensor(), T.Resize(256, antialias=True), T.CenterCrop(224),
                        T.ConvertImageDtype(torch.float32), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    print(f"{'size':>9s}  {'dali-ba vs PIL':>14s}  {'shifted -1 / +1':>15s}  {'torchvision tensor vs PIL':>25s}")
    for k, (w, h) in enumerate(SIZES):
        image = Image.open(f"{root}/c/{k:02d}.png").convert("RGB")
        reference, ours = pil(image), images[k]
        axis = 2 if w >= h else 1
        shifted = [(ours.roll(s, dims=axis) - reference).abs().mean().item() for s in (-1, 1)]
        print(f"{w:4d}x{h:<4d}  {(ours - reference).abs().mean().item():14.4f}  {shifted[0]:7.4f} {shifted[1]:7.4f}  "
              f"{(tensor(image) - reference).abs().mean().item():25.4f}")


if __name__ == "__main__":
    main()
