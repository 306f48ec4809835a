"""``dali-ba preview``: one row per image, the original then its M replicas, from any source."""

import pytest
from click.testing import CliRunner
from PIL import Image

from dali_ba.cli import main
from dali_ba.sources import scan_image_folder
from dali_ba.preview import MARGIN
from dali_ba.sources.tar import make_shards


def preview(*args):
    return CliRunner().invoke(main, ["preview", *args])


def size(images, m, side):
    return MARGIN + (1 + m) * (side + MARGIN), MARGIN + images * (side + MARGIN)


@pytest.mark.parametrize("recipe", ["imagenet", "randaugment", "val"])
def test_preview_writes_a_png_of_images_by_replicas(color_tree, tmp_path, recipe):
    root, _ = color_tree
    out = tmp_path / "grid.png"
    result = preview(str(root), "--recipe", recipe, "-M", "5", "-n", "3", "--image-size", "32", "--out", str(out),
                     "--random-erase", "0" if recipe == "val" else "0.5")
    assert result.exit_code == 0, result.output
    image = Image.open(out)
    assert image.format == "PNG" and image.size == size(3, 5, 32)
    tiles = [image.crop((MARGIN + c * 36, MARGIN, MARGIN + c * 36 + 32, MARGIN + 32)) for c in range(6)]
    assert len({tile.tobytes() for tile in tiles[1:]}) == (1 if recipe == "val" else 5), "replicas differ, val's do not"


def test_preview_shows_timms_recipes_with_its_random_filter(color_tree, tmp_path):
    pytest.importorskip("timm")
    root, _ = color_tree
    for recipe in ("rand-m9-mstd0.5-inc1", "v0r-mstd0.5"):
        out = tmp_path / f"{recipe}.png"
        result = preview(str(root), "--recipe", recipe, "--interpolation", "random", "-M", "3", "-n", "2",
                         "--image-size", "32", "--out", str(out))
        assert result.exit_code == 0, result.output
        assert Image.open(out).size == size(2, 3, 32)
    result = preview(str(root), "--recipe", "rand-m9-x3")
    assert result.exit_code != 0 and "'x3'" in result.output


def test_preview_reads_tar_shards_too(color_tree, tmp_path, monkeypatch):
    root, _ = color_tree
    make_shards(scan_image_folder(root), tmp_path / "s", shard_size=10)
    out = tmp_path / "tar.png"
    result = preview(str(tmp_path / "s" / "shard-*.tar"), "-M", "2", "-n", "2", "--image-size", "24", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == size(2, 2, 24)


def test_preview_of_something_that_is_no_source_says_what_it_takes(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n")
    result = preview(str(tmp_path / "x.csv"))
    assert result.exit_code == 2 and "neither a folder (ImageFolder layout), a .txt file list" in result.output

