"""How much of each image the M replicas' crop windows cover: what ROI decoding decodes.

    .venv/bin/python benchmarks/roi_coverage.py [DATA_DIR] [-M 1,2,4,8]

Runs the library's own window stage (``windows.py``: M windows per image, their union with the
resampling margin) on every image of the data set, from the encoded headers, and prints the
mean fraction of the image area that the decoded region covers. Without DATA_DIR it uses
``dali-ba bench``'s cached default set.
"""

from __future__ import annotations

import numpy as np
from nvidia.dali import fn, pipeline_def, types

from common import parse_args

from dali_ba.sources import scan_image_folder
from dali_ba.windows import RandomResizedCropWindows, image_shape, union


def coverage(index, aug_repeats: int, size: int = 224, batch: int = 50) -> float:
    files = [index.read(i) for i in range(len(index))]
    batches = [files[k : k + batch] for k in range(0, len(files) - batch + 1, batch)]

    @pipeline_def(batch_size=batch, num_threads=2, device_id=None, seed=0)
    def regions():
        encoded = fn.external_source(source=batches, batch=True, dtype=types.UINT8, ndim=1)
        shape = image_shape(encoded)
        draw = RandomResizedCropWindows(shape)
        region = union([draw.draw() for _ in range(aug_repeats)], shape, size)
        return region.size, shape

    pipe = regions()
    pipe.build()
    fractions = []
    for _ in batches:
        sizes, shapes = pipe.run()
        fractions += [np.prod(np.asarray(r)) / np.prod(np.asarray(s)) for r, s in zip(sizes, shapes)]
    return float(np.mean(fractions))


def main():
    args = parse_args(__doc__, (("-M", "--aug-repeats"), dict(default="1,2,4,8")))
    index = scan_image_folder(args.data_dir)
    print(f"{len(index)} images, 224 px output: mean fraction of the image decoded (union of the M windows + margin)")
    for m in map(int, args.aug_repeats.split(",")):
        print(f"  M={m}: {coverage(index, m):.3f}")


if __name__ == "__main__":
    main()
