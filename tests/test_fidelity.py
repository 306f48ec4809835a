"""Recipes against torchvision, the reference for what a recipe means (images made in the test).

``val`` is compared pixel by pixel with torchvision's own transforms. The random recipes are
compared by statistics: images whose pixels encode their own coordinates make every replica's
crop window readable from the output, and those windows are compared with what torchvision's
``RandomResizedCrop.get_params`` draws for the same image size.
"""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from nvidia.dali import fn, pipeline_def, types
from PIL import Image

from dali_ba import ImageFolderLoader
from dali_ba.decode import decode
from dali_ba.recipes import IMAGENET_MEAN, IMAGENET_STD, OutputSpec, _resized_window
from dali_ba.synthetic import natural_image
from dali_ba.windows import RRC_RATIO, RRC_SCALE, Window, image_shape, union

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

# Landscape, portrait, square, odd sides (centre crops at .5 offsets) and images smaller than 256.
VAL_SIZES = [(500, 375), (375, 500), (333, 500), (500, 333), (640, 427), (211, 149), (255, 300), (257, 257), (301, 229)]


def mean_abs(a, b):
    return (a - b).abs().mean().item()


def photos(tmp_path, suffix: str = "png", seed: int = 0, **save):
    """One photo-like image of each of VAL_SIZES in an ImageFolder tree (one class); returns its root."""
    folder = tmp_path / "photos" / "c"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k, (w, h) in enumerate(VAL_SIZES):
        Image.fromarray(natural_image(rng, w, h)).save(folder / f"{k:02d}.{suffix}", **save)
    return tmp_path / "photos"


@pytest.mark.parametrize("resize, crop", [(None, 224), (232, 224), (160, 128)])
def test_val_is_torchvisions_resize_and_center_crop(tmp_path, resize, crop):
    root = photos(tmp_path)
    folder = root / "c"
    loader = ImageFolderLoader(root, batch_size=len(VAL_SIZES), aug_repeats=1, recipe="val", device="cpu",
                               shuffle=False, drop_last=False, image_size=crop, resize_size=resize)
    images, _ = next(iter(loader))
    resize = resize or 256  # torchvision's reference default for a 224 crop
    pil = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    tensor = T.Compose([T.PILToTensor(), T.Resize(resize, antialias=True), T.CenterCrop(crop),
                        T.ConvertImageDtype(torch.float32), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    for k, (w, h) in enumerate(VAL_SIZES):
        image = Image.open(folder / f"{k:02d}.png").convert("RGB")
        reference, other_backend, ours = pil(image), tensor(image), images[k]
        gap = mean_abs(other_backend, reference)  # torchvision's own PIL-vs-tensor difference
        assert mean_abs(ours, reference) <= 2 * gap + 1e-3, f"{w}x{h}"
        assert mean_abs(ours, other_backend) < 1e-3, f"{w}x{h}: should match torchvision's tensor back-end"
        for shift in (1, -1):  # no systematic offset: a one-pixel shift is far worse
            shifted = ours.roll(shift, dims=2 if w >= h else 1)
            assert mean_abs(shifted, reference) > 5 * mean_abs(ours, reference), f"{w}x{h} shifted by {shift}"


def test_bicubic_val_is_torchvisions_bicubic_not_its_bilinear(tmp_path):
    root = photos(tmp_path)
    folder = root / "c"
    loader = ImageFolderLoader(root, batch_size=len(VAL_SIZES), aug_repeats=1, recipe="val", device="cpu",
                               shuffle=False, drop_last=False, interpolation="bicubic")
    images, _ = next(iter(loader))

    def reference(mode, backend):
        if backend == "pil":
            return T.Compose([T.Resize(256, interpolation=mode), T.CenterCrop(224), T.ToTensor(),
                              T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        return T.Compose([T.PILToTensor(), T.Resize(256, interpolation=mode, antialias=True), T.CenterCrop(224),
                          T.ConvertImageDtype(torch.float32), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    bicubic, bilinear = T.InterpolationMode.BICUBIC, T.InterpolationMode.BILINEAR
    for k, (w, h) in enumerate(VAL_SIZES):
        image = Image.open(folder / f"{k:02d}.png").convert("RGB")
        pil, tensor = reference(bicubic, "pil")(image), reference(bicubic, "tensor")(image)
        assert mean_abs(images[k], tensor) < 1e-3, f"{w}x{h}: torchvision's tensor bicubic"
        assert mean_abs(images[k], pil) <= 2 * mean_abs(tensor, pil) + 1e-3, f"{w}x{h}: as close to PIL as torchvision's tensor"
        assert mean_abs(images[k], reference(bilinear, "tensor")(image)) > 5 * mean_abs(images[k], tensor), f"{w}x{h}"


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_val_on_the_gpu_decodes_jpegs_as_close_to_torchvision_as_the_cpu_path(tmp_path, mode):
    """JPEGs (4:2:0 chroma) show the decoder's upsampling; the CPU path (libjpeg-turbo, as PIL) is the yardstick."""
    root = photos(tmp_path, "jpg", seed=1, quality=90, subsampling=2)
    folder = root / "c"
    options = dict(batch_size=len(VAL_SIZES), aug_repeats=1, recipe="val", shuffle=False, drop_last=False, interpolation=mode)
    cpu, _ = next(iter(ImageFolderLoader(root, device="cpu", **options)))
    gpu, _ = next(iter(ImageFolderLoader(root, device="cuda", **options)))
    pil = T.Compose([T.Resize(256, interpolation=T.InterpolationMode(mode)), T.CenterCrop(224), T.ToTensor(),
                     T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    gaps = []
    for k in range(len(VAL_SIZES)):
        reference = pil(Image.open(folder / f"{k:02d}.jpg").convert("RGB"))
        gaps.append((mean_abs(cpu[k], reference), mean_abs(gpu[k].float().cpu(), reference), mean_abs(gpu[k].float().cpu(), cpu[k])))
    gaps = np.array(gaps)
    print(f"val ({mode}) on JPEGs, mean |ours - torchvision| in normalized units: CPU {gaps[:, 0].mean():.5f}, "
          f"GPU {gaps[:, 1].mean():.5f}; "
          f"GPU vs CPU {gaps[:, 2].mean():.5f} (worst image {gaps[:, 2].max():.5f})")
    assert gaps[:, 1].mean() <= 1.5 * gaps[:, 0].mean() + 2e-3


# -- random-resized crop, read back from coordinate images --------------------------------------


def coordinate_image(width, height, x_step=1, y_step=1):
    """R = x // x_step, G = y // y_step, B = 0; as PNG so that nothing blurs the coordinates."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = (np.arange(width) // x_step)[None, :]
    image[..., 1] = (np.arange(height) // y_step)[:, None]
    return image


def crop_windows(images, size):
    """``(x_centre, y_centre, w, h, flipped)`` of each replica, in input pixels, from R and G."""
    pixels = ((images.float() * STD + MEAN) * 255).numpy()
    red, green = pixels[:, 0, size // 2, :], pixels[:, 1, :, size // 2]
    flipped = red[:, 0] > red[:, -1]
    span = lambda first, last: np.abs(last - first) * size / (size - 1)  # noqa: E731
    width, height = span(red[:, 0], red[:, -1]), span(green[:, 0], green[:, -1])
    x_centre = (red[:, 0] + red[:, -1]) / 2 + 0.5
    y_centre = (green[:, 0] + green[:, -1]) / 2 + 0.5
    return x_centre, y_centre, width, height, flipped


def torchvision_windows(height, width, count, scale=RRC_SCALE):
    torch.manual_seed(0)
    draws = [T.RandomResizedCrop.get_params(torch.empty(3, height, width), scale, RRC_RATIO) for _ in range(count)]
    return np.array([(j + w / 2, i + h / 2, w, h) for i, j, h, w in draws], dtype=np.float64)


def ks_distance(a, b):
    a, b = np.sort(a), np.sort(b)
    both = np.concatenate([a, b])
    return np.abs(np.searchsorted(a, both, side="right") / a.size - np.searchsorted(b, both, side="right") / b.size).max()


def replicas_of(tmp_path, image, *, files, aug_repeats, epochs, size, **options):
    folder = tmp_path / "coords" / "c"
    folder.mkdir(parents=True)
    for k in range(files):
        Image.fromarray(image).save(folder / f"{k}.png")
    loader = ImageFolderLoader(tmp_path / "coords", batch_size=files, aug_repeats=aug_repeats, image_size=size,
                               device="cpu", seed=7, **options)
    return torch.cat([images for _ in range(epochs) for images, _ in loader])


@pytest.mark.parametrize("resample", ["torch", "dali"])
@pytest.mark.parametrize("roi_decode", [True, False])
def test_imagenet_windows_are_drawn_as_torchvision_draws_them(tmp_path, roi_decode, resample):
    height, width, size = 200, 256, 32
    images = replicas_of(tmp_path, coordinate_image(width, height), files=8, aug_repeats=32, epochs=6, size=size,
                         roi_decode=roi_decode, resample=resample)
    x, y, w, h, flipped = crop_windows(images, size)
    ours_area, ours_ratio = w * h / (width * height), np.log(w / h)
    ref = torchvision_windows(height, width, 4000)
    ref_area, ref_ratio = ref[:, 2] * ref[:, 3] / (width * height), np.log(ref[:, 2] / ref[:, 3])
    assert len(x) == 1536
    # 0.001-level two-sample KS bound for these sizes is about 0.06; reading windows back adds ~0.01.
    assert ks_distance(ours_area, ref_area) < 0.07
    assert ks_distance(ours_ratio, ref_ratio) < 0.07
    assert abs(flipped.mean() - 0.5) < 0.05
    # Position uniform over the free range: the centre's relative place has mean 1/2, spread 1/sqrt(12).
    free = width - w > 16
    place = (x[free] - w[free] / 2) / (width - w[free])
    assert abs(place.mean() - 0.5) < 0.05 and abs(place.std() - 1 / math.sqrt(12)) < 0.05


@pytest.mark.parametrize("resample", ["torch", "dali"])
def test_crop_scale_draws_the_area_as_torchvision_with_that_scale(tmp_path, resample):
    """timm's --scale 0.35 1 (crop_scale): the area follows RandomResizedCrop(scale=(0.35, 1))."""
    height, width, size = 200, 256, 32
    images = replicas_of(tmp_path, coordinate_image(width, height), files=8, aug_repeats=32, epochs=4, size=size,
                         resample=resample, crop_scale=(0.35, 1.0))
    _, _, w, h, _ = crop_windows(images, size)
    ours = w * h / (width * height)
    ref = torchvision_windows(height, width, 4000, scale=(0.35, 1.0))
    default = torchvision_windows(height, width, 4000)
    assert ks_distance(ours, ref[:, 2] * ref[:, 3] / (width * height)) < 0.08
    assert ks_distance(ours, default[:, 2] * default[:, 3] / (width * height)) > 0.2


@pytest.mark.parametrize("recipe", ["imagenet", "rand-m0-p0.0"])
@pytest.mark.parametrize("resample", ["torch", "dali"])
def test_flips_follow_hflip_and_vflip(tmp_path, resample, recipe):
    """timm's --hflip and --vflip: each replica flips each way with its own probability."""
    height, width, size = 64, 80, 16
    image = coordinate_image(width, height)
    for hflip, vflip in ((0.0, 0.0), (1.0, 1.0), (0.5, 0.25)):
        images = replicas_of(tmp_path / f"{hflip}-{vflip}", image, files=16, aug_repeats=4, epochs=4, size=size,
                             resample=resample, recipe=recipe, hflip=hflip, vflip=vflip)
        pixels = ((images.float() * STD + MEAN) * 255).numpy()
        mirrored = pixels[:, 0, size // 2, 0] > pixels[:, 0, size // 2, -1]  # red runs right to left
        upside_down = pixels[:, 1, 0, size // 2] > pixels[:, 1, -1, size // 2]  # green runs bottom to top
        assert abs(mirrored.mean() - hflip) < 0.07 and abs(upside_down.mean() - vflip) < 0.07, (hflip, vflip)


@pytest.mark.parametrize("resample", ["torch", "dali"])
@pytest.mark.parametrize("wide", [True, False])
def test_imagenet_fallback_is_torchvisions_centred_crop(tmp_path, wide, resample):
    # 480 x 20: no window of area >= 8% fits a 3/4..4/3 ratio, so every draw falls back.
    image = coordinate_image(480, 20, x_step=2) if wide else coordinate_image(20, 480, y_step=2)
    images = replicas_of(tmp_path, image, files=2, aug_repeats=16, epochs=1, size=16, resample=resample)
    x, y, w, h, _ = crop_windows(images, 16)
    (i, j, hh, ww), = {T.RandomResizedCrop.get_params(torch.empty(3, *image.shape[:2]), RRC_SCALE, RRC_RATIO) for _ in range(5)}
    if wide:
        assert np.allclose(x * 2, j + ww / 2, atol=2.5), "centred along the long side"
    else:
        assert np.allclose(y * 2, i + hh / 2, atol=2.5)


def test_decoding_only_the_windows_union_gives_the_same_replica(tmp_path):
    """The ROI path (decode the region, cut the window from it) against full decode + the same window."""
    rng = np.random.default_rng(3)
    jpegs = []
    for k, (w, h) in enumerate([(500, 375), (333, 500), (640, 427)]):
        path = tmp_path / f"{k}.jpg"
        Image.fromarray(natural_image(rng, w, h)).save(path, quality=92)
        jpegs.append(np.fromfile(path, dtype=np.uint8))
    # (window start, window size), [y, x] / [h, w]: inside, at the image's corner, the whole image
    cases = [((101, 95), (150, 120)), ((0, 213), (320, 120)), ((0, 0), (427, 640))]
    spec = OutputSpec(64, types.UINT8, True)

    @pipeline_def(batch_size=3, num_threads=1, device_id=None)
    def both():
        encoded = fn.external_source(source=[jpegs], batch=True, dtype=types.UINT8, ndim=1)
        # A list of one batch per column (a callable would be handed DALI's iteration number).
        window = Window(*(fn.external_source(source=[[np.int32(case[n]) for case in cases]], batch=True) for n in range(2)))
        cropped_after = _resized_window(decode(encoded, on_gpu=False), spec, window)
        region = union([window], image_shape(encoded), spec.image_size)
        decoded_region = decode(encoded, on_gpu=False, region=region)
        return cropped_after, _resized_window(decoded_region, spec, window.moved_by(region.start))

    pipe = both()
    pipe.build()
    full, roi = (np.stack([np.asarray(t) for t in out]).astype(np.float64) for out in pipe.run())
    assert full.shape == roi.shape == (3, 64, 64, 3)
    # JPEG blocks at the region's edge decode alike; what remains is rounding.
    assert np.abs(full - roi).mean() < 0.05 and np.abs(full - roi).max() <= 2


def test_mirroring_inside_the_resize_is_an_exact_flip(tmp_path):
    rng = np.random.default_rng(5)
    image = natural_image(rng, 300, 200)
    spec = OutputSpec(48, types.UINT8, True)

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def plain_and_mirrored():
        images = fn.external_source(source=[[image]], batch=True, layout="HWC")
        window = Window(fn.external_source(source=[[np.int32([20, 37])]], batch=True),
                        fn.external_source(source=[[np.int32([150, 170])]], batch=True))
        return (_resized_window(images, spec, window),
                _resized_window(images, spec, window, mirror=fn.external_source(source=[[np.int32(1)]], batch=True)))

    pipe = plain_and_mirrored()
    pipe.build()
    plain, mirrored = (np.asarray(out[0]).astype(int) for out in pipe.run())
    assert np.abs(mirrored - plain[:, ::-1]).max() <= 1
    assert np.abs(mirrored - plain).mean() > 5


def test_cifar_pad_crop_offsets_are_uniform_and_every_replica_has_its_cutout(tmp_path):
    """torchvision's ``RandomCrop(32, padding=4)``: offsets uniform in [-4, 4]; cutout 16x16 in each replica."""
    from dali_ba.recipes import CIFAR_MEAN, CIFAR_STD

    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 0] = (np.arange(32) * 8)[None, :]  # R encodes x, G encodes y, B is 0
    image[..., 1] = (np.arange(32) * 8)[:, None]
    images = replicas_of(tmp_path, image, files=4, aug_repeats=16, epochs=4, size=32, recipe="cifar")
    pixels = (images.float() * torch.tensor(CIFAR_STD).view(1, 3, 1, 1) + torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) * 255
    red, green, blue = (pixels[:, c].numpy() for c in range(3))
    cut = blue > 57  # cutout fills with the mean colour (blue 114); the image and the padding have blue 0
    assert (cut.sum(axis=(1, 2)) >= 64).all(), "a cutout square (clipped at the border) in every replica"
    columns, rows = np.meshgrid(np.arange(32), np.arange(32))
    offsets = []
    for k in range(len(images)):
        seen = ~cut[k] & (red[k] > 4) & (green[k] > 4)  # image pixels (padding is black), off the x=0 / y=0 lines
        x, y = red[k][seen] / 8, green[k][seen] / 8
        flipped = np.corrcoef(x, columns[seen])[0, 1] < 0
        dx = np.median(x - ((31 - columns[seen]) if flipped else columns[seen]))
        dy = np.median(y - rows[seen])
        offsets += [round(dx), round(dy)]
    counts = np.bincount(np.asarray(offsets) + 4, minlength=9)
    assert len(counts) == 9, f"offsets outside [-4, 4]: {sorted(set(offsets))}"
    expected = len(offsets) / 9
    assert (counts > 0.5 * expected).all() and (counts < 1.5 * expected).all(), counts


# -- random erasing, against torchvision's RandomErasing ------------------------------------------


def erased_rectangles(images):
    """``(erased, top, left, height, width)`` per replica: where every channel is exactly 0."""
    zero = (images == 0).all(dim=1).numpy()  # [N, S, S]
    rows, cols = zero.any(axis=2), zero.any(axis=1)
    erased = rows.any(axis=1)
    top, left = rows.argmax(axis=1), cols.argmax(axis=1)
    height, width = rows.sum(axis=1), cols.sum(axis=1)
    assert (zero.sum(axis=(1, 2)) == height * width).all(), "each erased region is one filled rectangle"
    return erased, top, left, height, width


@pytest.mark.parametrize("resample", ["torch", "dali"])
def test_random_erasing_is_torchvisions_drawn_for_each_replica(tmp_path, resample):
    folder = tmp_path / "flat" / "c"
    folder.mkdir(parents=True)
    for k in range(64):  # flat colours: no pixel is 0 after normalization unless erased
        Image.new("RGB", (40 + k % 5, 36), (200, 30 + k, 90)).save(folder / f"{k:02d}.png")
    size, p = 32, 0.5
    loader = ImageFolderLoader(tmp_path / "flat", batch_size=16, aug_repeats=8, image_size=size, device="cpu", seed=5,
                               random_erase=p, resample=resample)
    images = torch.cat([images for _ in range(4) for images, _ in loader])
    erased, top, left, height, width = erased_rectangles(images)
    assert len(erased) == 2048
    torch.manual_seed(0)
    reference = T.RandomErasing(p=1.0, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0)
    ref = np.array([reference.get_params(torch.empty(3, size, size), scale=reference.scale, ratio=reference.ratio,
                                         value=[0])[:4] for _ in range(4000)])
    ref = ref[ref[:, 2] < size]  # get_params' "no rectangle fits" answer is the whole image: never erased
    assert abs(erased.mean() - p * len(ref) / 4000) < 0.045  # 4.5 standard deviations of 2048 coin flips
    h, w = height[erased], width[erased]
    assert ks_distance(h * w / size**2, ref[:, 2] * ref[:, 3] / size**2) < 0.07
    assert ks_distance(np.log(h / w), np.log(ref[:, 2] / ref[:, 3])) < 0.07
    place = (top[erased] + 0.5) / (size - h + 1)  # uniform over where the rectangle fits
    assert abs(place.mean() - 0.5) < 0.05 and abs(place.std() - 1 / math.sqrt(12)) < 0.05
    by_image = erased.reshape(-1, 8)
    assert 0 < by_image.sum(axis=1).mean() < 8 and (by_image.min(axis=1) != by_image.max(axis=1)).mean() > 0.9, \
        "the replicas of an image decide on their own"
    assert (images[torch.from_numpy(~erased)] != 0).all(), "nothing else is 0: the fill value is 0 exactly where erased"
