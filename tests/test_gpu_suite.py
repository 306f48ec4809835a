"""The one GPU call rehearsed on the CPU: benchmarks/gpu_suite.sh with GPU_SUITE_DEVICE=cpu."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_gpu_suite_runs_through_on_the_cpu_and_writes_every_step(tmp_path):
    env = dict(os.environ, GPU_SUITE_DEVICE="cpu", PYTHON=sys.executable, OUT=str(tmp_path / "out"),
               DALI_BA_CACHE=str(tmp_path / "cache"))
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh")], env=env, capture_output=True, text=True,
                          timeout=500)
    log = (tmp_path / "out" / "suite.log").read_text()
    assert done.returncode == 0 and log.rstrip().endswith("done"), log[-3000:] + done.stderr[-2000:]
    assert "exit" not in log, "no step failed or ran out of time"
    for step, loaders in (("loaders", 3), ("model", 3), ("starved", 3)):
        results = json.loads((tmp_path / "out" / f"gpu-{step}.json").read_text())["results"]
        assert len({r["loader"] for r in results}) == loaders, step
