import json

import pytest

from dali_ba.bench import report
from dali_ba.bench.metrics import TreeSample, free_repeats, make_result, step_stats


def result(loader="dali-ba", m=1, step_s=0.5, files=None, nbytes=None, unique=None, b=4):
    steps = 10
    files = b * steps if files is None else files
    return make_result(
        loader=loader,
        aug_repeats=m,
        batch_size=b,
        model="none",
        unique_per_step=b if unique is None else unique,
        step_times_s=[step_s] * steps,
        files_read=files,
        bytes_read=files * 1000 if nbytes is None else nbytes,
        before=TreeSample(cpu_s=1.0, rss_bytes=100, read_bytes=0),
        after=TreeSample(cpu_s=6.0, rss_bytes=100, read_bytes=50_000),
        peak_rss_bytes=3 * 2**20,
        cores=2,
        tree_available=True,
    )


def test_step_stats_uses_windows_so_bursty_delivery_counts_at_its_true_rate():
    # Two workers: every other batch waits 0.38 s, the next one was already queued (0.02 s).
    stats = step_stats([0.38, 0.02] * 10, window=4)
    assert stats.steps_per_s == pytest.approx(4 / 0.8)  # 5 steps/s, not the 1/0.2 a per-step median picks
    assert stats.steps == 20 and stats.total_s == pytest.approx(4.0)


def test_step_stats_spread_brackets_the_median():
    stats = step_stats([0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.3, 0.3, 0.3, 0.3], window=2)
    assert stats.steps_per_s_low == pytest.approx(1 / 0.3)
    assert stats.steps_per_s_high == pytest.approx(10.0)
    assert stats.steps_per_s_low <= stats.steps_per_s <= stats.steps_per_s_high


@pytest.mark.parametrize("times, message", [([], "at least one"), ([0.1, 0.0], "must be > 0")])
def test_step_stats_rejects_nonsense(times, message):
    with pytest.raises(ValueError, match=message):
        step_stats(times)


def test_result_arithmetic():
    r = result(m=4, step_s=0.5, files=40, nbytes=400_000, b=4)
    assert r.steps_per_s == pytest.approx(2.0)
    assert r.effective_batch == 16
    assert r.effective_images_per_s == pytest.approx(32.0)
    assert r.unique_images_per_s == pytest.approx(8.0)
    assert r.decodes_per_step == pytest.approx(4.0)
    assert r.reads_per_effective_image == pytest.approx(0.25)
    assert r.bytes_read_per_step == pytest.approx(40_000)
    assert r.bytes_read_per_effective_image == pytest.approx(2_500)
    assert r.os_read_bytes_per_step == pytest.approx(5_000)
    assert r.cpu_util_percent == pytest.approx(100 * 5.0 / (5.0 * 2))
    assert r.peak_rss_mib == pytest.approx(3.0)


def test_free_repeats_is_the_largest_m_within_five_percent_of_m1():
    results = [result(m=1, step_s=1.00), result(m=2, step_s=1.02), result(m=4, step_s=1.04), result(m=8, step_s=1.30)]
    results += [result("other", m=1, step_s=1.0), result("other", m=2, step_s=2.0)]
    results += [result("no-m1", m=2)]
    assert free_repeats(results) == {"dali-ba": 4, "other": 1, "no-m1": None}


def test_report_table_ratios_and_exports(tmp_path):
    results = [result(m=4, step_s=0.25, files=40), result("torch-large", m=4, step_s=0.5, files=160, unique=16)]
    text = report.table(results)
    assert "dali-ba" in text and "torch-large" in text and "reads/eff img" in text and "KiB/eff img" not in text
    assert "KiB/eff img" in report.table(results, wide=True)
    summary = report.comparison(results).splitlines()
    assert summary[1].split() == ["dali-ba", "over", "M=4", "reads", "less"]
    assert summary[3].split() == ["torch-large", "2.00x", "4.0x", "at", "M=4"]
    report.to_json(tmp_path / "r.json", results, {"git_sha": "abc"}, {"images": 3}, {"steps": 10})
    payload = json.loads((tmp_path / "r.json").read_text())
    assert payload["environment"]["git_sha"] == "abc" and len(payload["results"]) == 2
    report.to_csv(tmp_path / "r.csv", results, {"git_sha": "abc"})
    assert (tmp_path / "r.csv").read_text().count("\n") == 3
    report.plot(tmp_path / "r.png", results)
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_torch_gpu_baseline_code_path_runs_on_the_cpu(color_tree):
    """No GPU here: run torch-gpu's decode_jpeg + transform path on the CPU to catch its bugs."""
    import torch

    from dali_ba.bench.loaders import REGISTRY, BenchSpec
    from dali_ba.sources import scan_image_folder

    root, _ = color_tree
    spec = BenchSpec(batch_size=3, aug_repeats=2, image_size=16, dtype=torch.float32, device=torch.device("cpu"), workers=0)
    loader = REGISTRY["torch-gpu"].factory(scan_image_folder(root), spec)
    images, labels = next(loader.batches)
    assert images.shape == (6, 3, 16, 16) and labels.tolist()[0::2] == labels.tolist()[1::2]
    assert loader.read_counts()[0] == 3


def test_free_replicas_are_said_once_in_words():
    free = [result(m=1, step_s=1.00), result(m=4, step_s=1.03)]
    assert report.free_replicas(free, device="cuda", model="resnet50").startswith(
        "Free replicas: dali-ba keeps its steps/s within 5% of M=1 up to M=4")
    costly = [result(m=1, step_s=1.00), result(m=4, step_s=2.0)]
    text = report.free_replicas(costly, device="cpu", model="none")
    assert text.startswith("No replica is free here (1.00 steps/s at M=1, 0.50 at M=4): on the CPU")
    assert "no model step to hide it behind" in text.replace("\n", " ")
    assert all(len(line) <= 100 for line in text.splitlines())
