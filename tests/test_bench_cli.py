import json

import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import write_color_tree
from dali_ba.cli import main
from dali_ba.synthetic import dataset_stats, make_dataset


def bench(*args):
    return CliRunner().invoke(main, ["bench", *args])


def one_line_error(result, text):
    assert result.exit_code == 2, result.output
    assert text in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_missing_data_dir(tmp_path):
    one_line_error(bench(str(tmp_path / "nope")), "does not exist or is not a folder")


def test_empty_data_dir(tmp_path):
    one_line_error(bench(str(tmp_path)), "no class folders found")


def test_unknown_loader(tmp_path):
    write_color_tree(tmp_path)
    one_line_error(bench(str(tmp_path), "--loaders", "dali-ba,ffcv"), "unknown loader ffcv")


@pytest.mark.parametrize("value", ["1,x", "0,2", ""])
def test_bad_m_list(tmp_path, value):
    write_color_tree(tmp_path)
    one_line_error(bench(str(tmp_path), "-M", value), "--aug-repeats")


def test_torch_gpu_without_a_gpu_is_refused(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    write_color_tree(tmp_path)
    one_line_error(bench(str(tmp_path), "--loaders", "torch-gpu", "--device", "cpu"), "torch-gpu needs a CUDA device")


def test_bench_runs_every_cpu_loader_and_measures_io_exactly(tmp_path):
    data = tmp_path / "data"
    write_color_tree(data)
    out = tmp_path / "out"
    out.mkdir()
    result = bench(
        str(data), "-M", "1,2", "-b", "2", "--steps", "3", "--warmup", "1", "--image-size", "32", "--workers", "1",
        "--export-json", str(out / "r.json"), "--export-csv", str(out / "r.csv"), "--plot", str(out / "r.png"),
    )
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "r.json").read_text())
    rows = {(r["loader"], r["aug_repeats"]): r for r in payload["results"]}
    assert len(rows) == 10
    assert rows[("dali-ba", 2)]["decodes_per_step"] == 2 and rows[("dali-ba", 2)]["reads_per_effective_image"] == 0.5
    assert rows[("dali-ba", 2)]["requests_per_effective_image"] == 0.5, "one read per image from files"
    assert rows[("torch-once", 2)]["requests_per_effective_image"] is None, "counted by dali-ba's loader only"
    assert rows[("torch-once", 2)]["decodes_per_step"] == 2
    assert rows[("torch-repeat", 2)]["decodes_per_step"] == 4 and rows[("torch-large", 2)]["reads_per_effective_image"] == 1.0
    assert rows[("dali-large", 2)]["decodes_per_step"] == 4
    env = payload["environment"]
    for key in ("cpu", "cores", "dali", "torch", "torchvision", "git_sha", "command"):
        assert key in env
    assert payload["dataset"]["images"] == 24
    assert (out / "r.png").stat().st_size > 0 and (out / "r.csv").stat().st_size > 0
    # What a person reads (stdout; progress goes to stderr): a table within 120 columns, one ratio
    # table, the free-replica words once.
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("loader "))
    assert header.split() == ["loader", "M", "steps/s", "eff", "img/s", "uniq", "img/s", "reads/eff", "img", "read", "MB/s",
                              "CPU", "%", "peak", "RSS", "MiB"]
    assert all(len(line) <= 120 for line in lines), max(lines, key=len)
    assert sum("dali-ba over" in line for line in lines) == 1
    assert sum(line.startswith(("Free replicas", "No replica is free")) for line in lines) == 1
    assert "reads/eff img 1.000x" not in result.output, "no per-M repetition of the I/O ratios"
    assert "bytes_read_per_effective_image" in payload["results"][0], "every figure stays in the exports"


def test_wide_shows_every_column(tmp_path):
    data = tmp_path / "data"
    write_color_tree(data)
    result = bench(str(data), "-M", "1", "-b", "2", "--steps", "2", "--warmup", "1", "--image-size", "32", "--workers", "1",
                   "--loaders", "dali-ba", "--wide")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("loader "))
    for column in ("decodes/step", "KiB/eff img", "OS KiB/step", "files/s", "read wait %"):
        assert column in header


def test_make_dataset_writes_imagenet_like_jpegs(tmp_path):
    result = CliRunner().invoke(main, ["make-dataset", str(tmp_path / "set"), "--images", "6", "--classes", "2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "6 images in 2 classes" in result.output
    stats = dataset_stats(tmp_path / "set")
    assert stats.images == 6 and stats.classes == 2


def test_synthetic_images_have_photo_like_entropy(tmp_path):
    make_dataset(tmp_path, images=8, classes=1, seed=3, workers=1)
    for path in sorted(tmp_path.rglob("*.JPEG")):
        with Image.open(path) as image:
            width, height = image.size
            assert image.format == "JPEG" and image.mode == "RGB"
        bits_per_pixel = path.stat().st_size * 8 / (width * height)
        # ImageNet averages ~4.5 bpp (110 KB at 470x390); flat colour gives < 0.5, white noise > 8.
        assert 1.5 < bits_per_pixel < 8, (path, bits_per_pixel)


def test_make_dataset_refuses_a_folder_with_files(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    result = CliRunner().invoke(main, ["make-dataset", str(tmp_path), "--images", "2", "--classes", "1"])
    one_line_error(result, "is not empty")


def test_cold_cache_tar_copy_and_full_decode_variants_run_side_by_side(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_color_tree(data)
    result = bench(
        str(data), "-M", "2", "-b", "2", "--steps", "3", "--warmup", "1", "--image-size", "32", "--workers", "1",
        "--loaders", "dali-ba,dali-ba-tar,dali-ba-full,dali-ba-parquet,torch-once", "--cold-cache",
        "--export-json", str(tmp_path / "r.json"),
    )
    assert result.exit_code == 0, result.output
    assert "page cache evicted before each timed run" in result.output
    rows = {row["loader"]: row for row in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert set(rows) == {"dali-ba", "dali-ba-tar", "dali-ba-full", "dali-ba-parquet", "torch-once"}
    assert rows["dali-ba-parquet"]["bytes_read_per_step"] > 0, "cold: the row groups came from storage, not the store's cache"
    for name in ("dali-ba", "dali-ba-tar", "dali-ba-full", "dali-ba-parquet"):
        assert rows[name]["decodes_per_step"] == 2 and rows[name]["read_wait_percent"] is not None
        assert rows[name]["files_per_s"] > 0 and rows[name]["read_mb_per_s"] > 0
    assert rows["torch-once"]["read_wait_percent"] is None
    assert list((tmp_path / "cache" / "bench-shards").glob("*/train-000000.tar")), "the tar copy is cached"
    assert list((tmp_path / "cache" / "bench-parquet").glob("*/train-00000.parquet")), "so is the Parquet copy"


def test_exports_are_written_after_every_loader_and_m(tmp_path, monkeypatch):
    """A run cut short (a time limit on a lent GPU) keeps every (loader, M) it finished."""
    import dali_ba.bench.runner as runner

    data = tmp_path / "data"
    write_color_tree(data)
    seen = []
    real = runner.run_one

    def run_one(config, name, m, *args, **kw):
        if (tmp_path / "r.json").exists():
            seen.append(len(json.loads((tmp_path / "r.json").read_text())["results"]))
        return real(config, name, m, *args, **kw)

    monkeypatch.setattr(runner, "run_one", run_one)
    result = bench(str(data), "-M", "1,2", "-b", "2", "--steps", "2", "--warmup", "1", "--image-size", "32", "--workers", "1",
                   "--loaders", "dali-ba,torch-once", "--export-json", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    assert seen == [0, 1, 2, 3], "the plan, then every finished run, was on disk before the next run started"


def test_a_run_that_fails_is_recorded_and_the_bench_goes_on(tmp_path, monkeypatch):
    """M=4 asks dali-large for 40 images per batch of a 24-image set: that run fails, the rest run."""
    data = tmp_path / "data"
    write_color_tree(data)
    result = bench(str(data), "-M", "4,1", "-b", "10", "--steps", "2", "--warmup", "1", "--image-size", "32",
                   "--workers", "1", "--loaders", "dali-large,dali-ba", "--export-json", str(tmp_path / "r.json"),
                   "--export-csv", str(tmp_path / "r.csv"))
    assert result.exit_code == 1, result.output
    assert "1 of 4 runs failed" in result.output and "dali-large at M=4: ValueError: dali-large needs 40 images" in result.output
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["planned"] == [["dali-large", 4], ["dali-ba", 4], ["dali-large", 1], ["dali-ba", 1]], "M in the order given"
    assert [(r["loader"], r["aug_repeats"]) for r in saved["results"]] == [("dali-ba", 4), ("dali-large", 1), ("dali-ba", 1)]
    assert [(f["loader"], f["aug_repeats"]) for f in saved["failures"]] == [("dali-large", 4)]
    assert all(r["index_s"] > 0 and r["first_batch_s"] > 0 for r in saved["results"])
    assert "Start-up: index of the folder" in result.output and "loader built to first batch: dali-ba" in result.output


def test_a_bench_where_every_run_fails_says_why(tmp_path):
    data = tmp_path / "data"
    write_color_tree(data)
    result = bench(str(data), "-M", "1", "-b", "100", "--steps", "2", "--warmup", "1", "--image-size", "32",
                   "--workers", "1", "--loaders", "dali-ba")
    assert result.exit_code == 1
    assert "every run failed: dali-ba at M=1: ValueError: batch_size=100 is larger than the 24 images" in result.output


def test_dali_ba_url_needs_a_url_and_names_one_it_cannot_read(color_tree, tmp_path):
    root, _ = color_tree
    one_line_error(bench(str(root), "--loaders", "dali-ba-url"), "loader dali-ba-url reads the url option (--url)")
    missing = bench(str(root), "--loaders", "dali-ba-url", "--url", str(tmp_path / "nope-{000..001}.tar"), "--steps", "1")
    assert missing.exit_code == 2 and "nope-000.tar' does not exist" in missing.output and "Traceback" not in missing.output
