# The two set-up commands of the README. Both create .venv and install this checkout into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint bench bench-peers install install-streaming clean docker-check gpu-rehearsal

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("dali-ba needs Python >= 3.10, found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	$(MAKE) --no-print-directory install-streaming
	@touch $@

# mosaicml-streaming, a bench peer, without its numpy<2.2 pin (pyproject.toml says why), and the
# packages it imports (its cloud clients are imported only for their URLs, so they are left out).
STREAMING := 'mosaicml-streaming==0.13.0'
STREAMING_IMPORTS := 'transformers>=4.21.3,<5' 'xxhash>=3,<4' 'zstd>=1.5.2.5,<2' 'Brotli>=1.0.9' \
	'python-snappy>=0.6.1,<1' 'tqdm>=4.64,<5' 'catalogue>=2,<3'
install-streaming:
	$(PY) -m pip install -q --no-deps $(STREAMING)
	$(PY) -m pip install -q $(STREAMING_IMPORTS)

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

# dali-ba beside WebDataset, MosaicML Streaming and LitData, on disk and over a URL, 3 rounds, and
# what each gives a training run (benchmarks/peers.py; about 30 minutes on 2 cores).
bench-peers: $(STAMP)
	$(PY) benchmarks/peers.py

# benchmarks/gpu_suite.sh on the CPU with tiny sizes: every command of the one GPU call, checked here.
gpu-rehearsal: $(STAMP)
	GPU_SUITE_DEVICE=cpu PYTHON=$(PY) OUT=/tmp/gpu-rehearsal bash benchmarks/gpu_suite.sh

# Builds docker/Dockerfile with buildah (no daemon) and checks the image; root, ~25 GB, GBs of downloads.
docker-check:
	bash docker/check.sh

clean:
	rm -rf $(VENV) .cache *.egg-info
