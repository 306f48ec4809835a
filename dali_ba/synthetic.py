"""An ImageNet-like JPEG data set made on the spot, for benchmarks on machines without data.

A benchmark of JPEG loaders is only as honest as its JPEGs: decode time depends on resolution,
entropy (file size) and chroma subsampling, so random noise (too big, too slow) or flat colours
(too small, too fast) would give wrong numbers. The images here follow two statistical models of
natural images, a "dead leaves" occlusion model (objects of power-law sizes with sharp edges)
over 1/f ("pink") colour noise, which gives photographs' spectrum and edges. Sizes and qualities
are drawn to match ImageNet-1k train: mean about 470 x 390 with a tail of large images, mean file
about 110 KB, JPEG quality 90-96, 4:2:0 chroma.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# (width, height, share): ImageNet's commonest shapes, then a long tail drawn log-uniformly.
COMMON_SIZES = ((500, 375, 0.38), (500, 333, 0.14), (375, 500, 0.10), (333, 500, 0.04), (500, 500, 0.04))
TAIL_SHARE = 1.0 - sum(share for _, _, share in COMMON_SIZES)
QUALITY_RANGE = (90, 96)
#: Part of the default data set's cache key: raise it when the images made for a seed change.
DATASET_VERSION = 1


def _image_size(rng: np.random.Generator) -> tuple[int, int]:
    draw = rng.random()
    for width, height, share in COMMON_SIZES:
        if draw < share:
            return width, height
        draw -= share
    # The tail: thumbnails to 1200 px, and one image in twenty up to multi-megapixel photos.
    top = 3000 if rng.random() < 0.05 else 1200
    long_side = int(np.exp(rng.uniform(np.log(120), np.log(top))))
    aspect = np.exp(rng.uniform(np.log(0.6), np.log(1.0)))
    short_side = max(32, int(long_side * aspect))
    return (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)


def _pink_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Colour noise with a 1/f amplitude spectrum, unit standard deviation, shape [H, W, 3]."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    falloff = 1.0 / np.maximum(np.sqrt(fx * fx + fy * fy), 1.0 / max(height, width))
    channels = []
    for _ in range(3):
        spectrum = (rng.normal(size=falloff.shape) + 1j * rng.normal(size=falloff.shape)) * falloff
        channel = np.fft.irfft2(spectrum, s=(height, width))
        channels.append(channel / (channel.std() + 1e-9))
    mix = rng.normal(0.0, 0.5, (3, 3)) + np.eye(3)  # correlated channels, as in photographs
    return np.stack(channels, axis=-1) @ mix.T / np.sqrt(3.0)


def natural_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A ``[height, width, 3]`` uint8 image with natural-image statistics (see module docstring)."""
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[:] = rng.uniform(40, 215, 3)
    yy, xx = np.ogrid[0:height, 0:width]
    scale = max(height, width)
    # Dead leaves: many small objects, few large ones (radius density ~ 1/r^3).
    for _ in range(int(rng.integers(25, 70))):
        radius = scale * 0.02 / np.sqrt(max(rng.random(), 4e-4))
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        if rng.random() < 0.5:
            mask = (yy - cy) ** 2 + ((xx - cx) * rng.uniform(0.5, 2.0)) ** 2 < radius**2
        else:
            mask = (np.abs(yy - cy) < radius * rng.uniform(0.3, 1.0)) & (np.abs(xx - cx) < radius)
        # Shading: each object is lit from its own direction, so it is not a flat colour.
        angle = rng.uniform(0, 2 * np.pi)
        ramp = ((yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)) / max(radius, 1.0)
        shade = np.broadcast_to(ramp, mask.shape)[mask][:, None] * rng.uniform(10, 40)
        canvas[mask] = rng.uniform(0, 255, 3) + shade
    texture = _pink_noise(rng, height, width) * rng.uniform(18, 30)
    fine = rng.normal(0.0, rng.uniform(2.0, 4.0), (height, width, 1))  # sensor grain
    return np.clip(canvas + texture + fine, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class DatasetStats:
    """What a JPEG folder looks like to a decoder (all measured from the files).

    Attributes:
        images: Number of files.
        classes: Number of class folders.
        mean_width, mean_height: Mean resolution in pixels.
        p50_pixels, p95_pixels, max_pixels: Percentiles of width * height.
        mean_kib, p50_kib, p95_kib: File size in KiB.
        total_mib: All files together, MiB.
    """

    images: int
    classes: int
    mean_width: float
    mean_height: float
    p50_pixels: float
    p95_pixels: float
    max_pixels: int
    mean_kib: float
    p50_kib: float
    p95_kib: float
    total_mib: float

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.images} images in {self.classes} classes, mean {self.mean_width:.0f}x{self.mean_height:.0f} px "
            f"(p50 {self.p50_pixels / 1e3:.0f} kpx, p95 {self.p95_pixels / 1e3:.0f} kpx, max {self.max_pixels / 1e6:.1f} Mpx), "
            f"mean {self.mean_kib:.0f} KiB (p50 {self.p50_kib:.0f}, p95 {self.p95_kib:.0f}), {self.total_mib:.0f} MiB in all"
        )


def _write_one(job) -> None:
    path, seed = job
    rng = np.random.default_rng(seed)
    width, height = _image_size(rng)
    quality = int(rng.integers(QUALITY_RANGE[0], QUALITY_RANGE[1] + 1))
    Image.fromarray(natural_image(rng, width, height)).save(path, format="JPEG", quality=quality, subsampling=2)


def check_request(out: str | os.PathLike, *, images: int, classes: int) -> Path:
    """Checks :func:`make_dataset`'s arguments before anything is written; returns ``out`` as a Path.

    Raises:
        ValueError: Bad counts, or ``out`` already holds files.
    """
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be an int >= 1, but got {images!r}")
    if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= images:
        raise ValueError(f"classes must be an int in [1, images={images}], but got {classes!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output folder {str(out)!r} is not empty; choose a new folder")
    return out


def make_dataset(out: str | os.PathLike, *, images: int, classes: int, seed: int = 0, workers: int | None = None, progress=None) -> Path:
    """Writes ``images`` JPEGs into ``out/<class>/``, spread evenly over ``classes`` folders.

    Args:
        out: Folder to create (must not hold files already).
        images: Number of images, >= 1.
        classes: Number of class folders, 1 <= classes <= images.
        seed: Same seed, same files.
        workers: Processes to use; ``None`` uses every core.
        progress: Optional callable, called with the number of images just written.

    Returns:
        ``out`` as a ``Path``.

    Raises:
        ValueError: Bad counts, or ``out`` already holds files.
    """
    out = check_request(out, images=images, classes=classes)
    jobs = []
    for k in range(images):
        folder = out / f"n{k % classes:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((str(folder / f"img_{k:07d}.JPEG"), (seed, k)))
    workers = workers or len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(_write_one, jobs, chunksize=8):
            if progress is not None:
                progress(1)
    return out


def dataset_stats(root: str | os.PathLike) -> DatasetStats:
    """Measures resolution and file size of every image under ``root`` (headers only, no decode)."""
    from .sources import scan_image_folder

    index = scan_image_folder(root)
    sizes = np.array([os.path.getsize(f) for f in index.files], dtype=np.float64)
    dims = []
    for path in index.files:
        with Image.open(path) as image:
            dims.append(image.size)
    dims = np.array(dims, dtype=np.float64)
    pixels = dims[:, 0] * dims[:, 1]
    return DatasetStats(
        images=len(index),
        classes=len(index.classes),
        mean_width=float(dims[:, 0].mean()),
        mean_height=float(dims[:, 1].mean()),
        p50_pixels=float(np.percentile(pixels, 50)),
        p95_pixels=float(np.percentile(pixels, 95)),
        max_pixels=int(pixels.max()),
        mean_kib=float(sizes.mean() / 1024),
        p50_kib=float(np.percentile(sizes, 50) / 1024),
        p95_kib=float(np.percentile(sizes, 95) / 1024),
        total_mib=float(sizes.sum() / 2**20),
    )
