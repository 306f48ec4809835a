# The two set-up commands of the README. Both create .venv and install this checkout into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint bench install clean docker-check gpu-rehearsal

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("dali-ba needs Python >= 3.10, found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	@touch $@

# ruff first (seconds), then every test: what CI runs.
test: lint
	$(PY) -m pytest -q

# The quick loop: no end-to-end runs (marker slow), stop at the first failure.
test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(VENV)/bin/dali-ba bench

# benchmarks/gpu_suite.sh on the CPU with tiny sizes: every command of the one GPU call, checked here.
gpu-rehearsal: $(STAMP)
	GPU_SUITE_DEVICE=cpu PYTHON=$(PY) OUT=/tmp/gpu-rehearsal bash benchmarks/gpu_suite.sh

# Builds docker/Dockerfile with buildah (no daemon) and checks the image; root, ~25 GB, GBs of downloads.
docker-check:
	bash docker/check.sh

clean:
	rm -rf $(VENV) .cache *.egg-info
