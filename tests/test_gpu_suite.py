"""The one GPU call rehearsed on the CPU: benchmarks/gpu_suite.sh with GPU_SUITE_DEVICE=cpu.

The rehearsal keeps the GPU run's images per largest batch, makes the region decoders crash (so
the loaders and dali-large take their fallbacks), dooms one step's runs to fail, cuts one step by
its time limit, and is run twice: first cut while the data set is being made, then again over
what that left behind, as a rerun on the same warm GPU machine would be.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def suite(tmp_path, **limits):
    env = dict(os.environ, GPU_SUITE_DEVICE="cpu", PYTHON=sys.executable, OUT=str(tmp_path / "out"),
               DALI_BA_CACHE=str(tmp_path / "cache"), **limits)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    return done, (tmp_path / "out" / "suite.log").read_text()


@pytest.mark.slow
def test_gpu_suite_rehearsal_survives_crashes_failures_cuts_and_a_rerun(tmp_path):
    done, log = suite(tmp_path, T_DATA="1")
    assert done.returncode == 1 and "making the data set failed or ran out of its 1s" in log, log[-3000:]
    # What a cut further into the making leaves: a half-made folder (the next run must not refuse it).
    leftover = tmp_path / "cache" / f"gpu-suite-{8 * 2 * 8}.partial" / "class_000"
    leftover.mkdir(parents=True, exist_ok=True)
    (leftover / "half.jpg").write_bytes(b"\xff\xd8 cut here")

    done, log = suite(tmp_path)
    assert done.returncode == 0 and log.rstrip().endswith("done"), log[-3000:] + done.stderr[-2000:]
    out = tmp_path / "out"
    images = 8 * 2 * 8  # 8 full batches of B*max M, as on the GPU
    assert (tmp_path / "cache" / f"gpu-suite-{images}").is_dir()
    assert not list((tmp_path / "cache").glob("*.partial"))

    verdicts = json.loads((out / "probe.json").read_text())["verdicts"]
    assert verdicts["whole"]["works"] and not verdicts["region"]["works"] and not verdicts["random_crop"]["works"]
    assert {o["signal"] for o in verdicts["region"]["tried"]} == {"SIGSEGV"}

    loaders = json.loads((out / "gpu-loaders.json").read_text())
    assert [r["aug_repeats"] for r in loaders["results"]][::3] == [4, 1, 8, 2], "M in the order of value"
    variants = {r["loader"]: r["variant"] for r in loaders["results"]}
    assert variants["dali-ba"] == "whole-image decode"
    assert variants["dali-large"].startswith("whole decode + random_resized_crop")
    assert len(loaders["results"]) == 12 and not loaders["failures"]
    assert json.loads((out / "gpu-model.json").read_text())["failures"] == []
    recipe = json.loads((out / "gpu-recipe.json").read_text())
    assert recipe["config"]["recipe"] == "trivialaugment" and len(recipe["results"]) == 6 and not recipe["failures"]

    doomed = json.loads((out / "gpu-doomed.json").read_text())
    assert [f["loader"] for f in doomed["failures"]] == ["dali-ba", "torch-large"] and not doomed["results"]
    assert "doomed: exit 1" in log and "doomed: 2 planned, 0 done, 2 failed, 0 cut" in log

    timm = json.loads((out / "gpu-timm.json").read_text())
    assert timm["config"]["recipe"] == "rand-m9-mstd0.5-inc1" and not timm["failures"]
    assert {(r["loader"], r["aug_repeats"]) for r in timm["results"]} == {(name, m) for name in ("dali-ba", "timm")
                                                                          for m in (3, 1)}

    assert "starved: exit 124 (cut by its time limit" in log
    starved = json.loads((out / "gpu-starved.json").read_text())
    assert len(starved["planned"]) == 6 and len(starved["results"]) < 6, "the limit cut runs short"
    assert "cut: " in log.split("starved:")[-1]
    assert (out / "pytest.log").exists() and "GPU tests:" in log


def test_dali_is_unpacked_once_and_a_cut_unpacking_is_redone(tmp_path):
    site = tmp_path / "site" / "nvidia" / "dali"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("__version__ = '0'\n")
    stream = tmp_path / "stream.xz"
    subprocess.run(f"tar -C {tmp_path / 'site'} -cf - . | xz -1 > {stream}", shell=True, check=True)
    parts = tmp_path / "parts"
    parts.mkdir()
    subprocess.run(["split", "-n", "2", "-d", "-a", "2", str(stream), str(parts / "part-")], check=True)
    digest = subprocess.run(f"cat {parts}/part-* | sha256sum", shell=True, capture_output=True, text=True).stdout.split()[0]
    (tmp_path / "SHA256").write_text(digest + "\n")
    unpack = ["bash", str(ROOT / "benchmarks" / "unpack_dali.sh"), str(parts), str(tmp_path / "dali"), str(tmp_path / "SHA256")]

    whole = (parts / "part-01").read_bytes()
    (parts / "part-01").write_bytes(whole[: len(whole) // 2])  # a part that did not arrive whole
    done = subprocess.run(unpack, capture_output=True, text=True)
    assert done.returncode == 1 and "not whole" in done.stderr and not (tmp_path / "dali").exists()
    (parts / "part-01").write_bytes(whole)
    (tmp_path / "dali.partial" / "junk").mkdir(parents=True)  # what a run killed while unpacking leaves
    assert subprocess.run(unpack).returncode == 0
    assert (tmp_path / "dali" / "nvidia" / "dali" / "__init__.py").exists() and not (tmp_path / "dali.partial").exists()
    (parts / "part-00").unlink()
    assert subprocess.run(unpack).returncode == 0, "unpacked already: the parts are not needed again"
