"""The decode probe: a child process per case, verdicts cached, and the loader's decision on them.

The GPU's region decode cannot be broken on purpose on a CPU machine, so the decision logic is
tested with children that really die (SIGSEGV, a hang) and with a stand-in ``run``; the child
itself runs for real on DALI's CPU decoder, the same code that runs on ``mixed``.
"""

import os
import sys
import threading
import time
import warnings

import pytest
import torch

from dali_ba import ImageFolderLoader, decode_probe
from dali_ba.decode_probe import (
    WORKAROUNDS,
    Outcome,
    RegionDecodeWarning,
    cached_verdict,
    probe_verdict,
    region_decode_plan,
    run_case,
)


@pytest.fixture
def fake_gpu(monkeypatch):
    """``verdict_key`` for ``cuda:N`` without a GPU: an H200 under this DALI."""

    def key(device):
        return {"device": "cpu" if device == "cpu" else "NVIDIA H200", "dali": "2.4.0", "nvimagecodec": "0.9.0"}

    monkeypatch.setattr(decode_probe, "verdict_key", key)


def outcome(case, options, ok, sig=None):
    return Outcome(case, dict(options), ok, -11 if sig else (0 if ok else 1), sig, "" if ok else "broken", 0.1)


@pytest.mark.parametrize("case", ["whole", "region", "random_crop"])
def test_a_child_decodes_every_case_on_the_cpu_and_matches_libjpeg(case):
    result = run_case(case, device="cpu")
    assert result.ok, result.message
    assert result.returncode == 0 and result.signal is None
    assert result.details["batches"] == 3 and result.details["max_mean_abs_diff"] <= 1.0
    assert any("nvimgcodec" in name for name in result.details["libraries"])


def test_a_child_killed_by_sigsegv_is_a_failed_case_named_by_its_signal():
    result = run_case("region", device="cpu", simulate_crash=True)
    assert not result.ok and result.signal == "SIGSEGV" and result.returncode == -11
    assert "Fatal Python error" in result.message or "Segmentation" in result.message  # PYTHONFAULTHANDLER's report
    assert result.describe() == "killed by SIGSEGV"


def test_a_child_that_hangs_is_killed_and_counts_as_failed():
    start = time.perf_counter()
    result = run_case("region", command=[sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)
    assert time.perf_counter() - start < 10
    assert not result.ok and result.returncode is None and "timed out" in result.describe()


def test_a_child_that_raises_reports_its_error():
    result = '{\"ok\": false, \"error\": \"RuntimeError: nvJPEG INTERNAL_ERROR (8)\"}'
    command = [sys.executable, "-c", f"print({decode_probe.RESULT_TAG!r} + '{result}'); raise SystemExit(1)"]
    result = run_case("region", command=command)
    assert not result.ok and result.returncode == 1
    assert "INTERNAL_ERROR" in result.describe()


def test_an_unknown_case_is_refused():
    with pytest.raises(ValueError, match="case must be one of whole, region, random_crop"):
        run_case("roi")


def test_the_verdict_keeps_the_first_option_set_that_works_and_is_cached(fake_gpu):
    calls = []

    def run(case, options, device):
        calls.append(options)
        return outcome(case, options, ok=options == WORKAROUNDS[1], sig=None if options else "SIGSEGV")

    verdict = probe_verdict("region", "cuda:0", run=run)
    assert verdict.works and verdict.options == WORKAROUNDS[1]
    assert calls == [{}, WORKAROUNDS[0], WORKAROUNDS[1]]
    assert [o.describe() for o in verdict.tried][0] == "killed by SIGSEGV"
    again = probe_verdict("region", "cuda:0", run=run)
    assert len(calls) == 3, "a cached verdict runs nothing"
    assert again.options == verdict.options and cached_verdict("region", "cuda:0").works


def test_a_verdict_where_nothing_works_tries_every_workaround(fake_gpu):
    verdict = probe_verdict("random_crop", "cuda:0", run=lambda case, options, device: outcome(case, options, False))
    assert not verdict.works and verdict.options == {}
    assert len(verdict.tried) == 1 + len(WORKAROUNDS)
    assert "fails with every option set" in verdict.describe()


def test_a_torn_cache_file_is_probed_again(fake_gpu):
    ok = lambda case, options, device: outcome(case, options, True)  # noqa: E731
    probe_verdict("region", "cuda:0", run=ok)
    path = decode_probe._cache_file("region", decode_probe.verdict_key("cuda:0"))
    path.write_text('{"case": "reg')
    assert cached_verdict("region", "cuda:0") is None
    assert probe_verdict("region", "cuda:0", run=ok).works


def test_processes_of_a_node_probe_once_and_share_the_verdict(fake_gpu):
    calls = []

    def slow(case, options, device):
        calls.append(1)
        time.sleep(0.3)
        return outcome(case, options, True)

    verdicts = []
    threads = [threading.Thread(target=lambda: verdicts.append(probe_verdict("region", "cuda:0", run=slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(verdicts) == 4 and all(v.works for v in verdicts)


def test_the_loader_decodes_whole_images_on_a_gpu_whose_region_decode_fails(fake_gpu):
    broken = lambda case, device: decode_probe.Verdict(  # noqa: E731
        case, "NVIDIA H200", False, {}, [outcome(case, {}, False, "SIGSEGV")], decode_probe.verdict_key(device))
    with pytest.warns(RegionDecodeWarning, match=r"NVIDIA H200 .*killed by SIGSEGV.*whole images"):
        assert region_decode_plan("auto", torch.device("cuda", 0), probe=broken) == (False, {})


def test_the_loader_uses_the_workaround_the_probe_found(fake_gpu):
    fixed = lambda case, device: decode_probe.Verdict(  # noqa: E731
        case, "NVIDIA H200", True, {"hw_decoder_load": 0.0}, [], decode_probe.verdict_key(device))
    assert region_decode_plan("auto", torch.device("cuda", 0), probe=fixed) == (True, {"hw_decoder_load": 0.0})


def test_explicit_roi_decode_asks_no_probe():
    def never(case, device):
        raise AssertionError("no probe for an explicit choice")

    assert region_decode_plan(True, torch.device("cuda", 0), probe=never) == (True, {})
    assert region_decode_plan(False, torch.device("cuda", 0), probe=never) == (False, {})


def test_on_the_cpu_auto_follows_a_cached_verdict_and_probes_nothing(color_tree, fake_gpu):
    root, _ = color_tree
    with warnings.catch_warnings():
        warnings.simplefilter("error", RegionDecodeWarning)
        assert ImageFolderLoader(root, batch_size=4, aug_repeats=2, image_size=16, device="cpu").roi_decode is True
    probe_verdict("region", "cpu", run=lambda case, options, device: outcome(case, options, False, "SIGSEGV"))
    with pytest.warns(RegionDecodeWarning, match="cpu"):
        loader = ImageFolderLoader(root, batch_size=4, aug_repeats=2, image_size=16, device="cpu")
    assert loader.roi_decode is False
    images, labels = next(iter(loader))
    assert images.shape == (8, 3, 16, 16)
    assert ImageFolderLoader(root, batch_size=4, aug_repeats=2, image_size=16, device="cpu", roi_decode=True).roi_decode


def test_roi_decode_takes_auto_true_or_false_only(color_tree):
    root, _ = color_tree
    with pytest.raises(ValueError, match="roi_decode must be 'auto', True or False, but got 1"):
        ImageFolderLoader(root, batch_size=4, device="cpu", roi_decode=1)


def test_the_command_probes_every_case_and_writes_its_report(tmp_path):
    import json
    import subprocess

    out = tmp_path / "probe.json"
    done = subprocess.run([sys.executable, "-m", "dali_ba", "probe-decode", "--device", "cpu", "--out", str(out),
                           "--simulate-crash", "random_crop"], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["verdicts"]["whole"]["works"] and report["verdicts"]["region"]["works"]
    crashed = report["verdicts"]["random_crop"]
    assert not crashed["works"] and {o["signal"] for o in crashed["tried"]} == {"SIGSEGV"}
    assert "random_crop: fails with every option set" in done.stdout


def test_a_cache_that_cannot_be_written_probes_without_it(fake_gpu, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DALI_BA_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="could not use the cache"):
        verdict = probe_verdict("region", "cuda:0", run=lambda case, options, device: outcome(case, options, True))
    assert verdict.works
