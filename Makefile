# weak3d: the two commands of the README, and their setup.
#   make demo   creates .venv, installs pinned dependencies, runs the main job on the embedded world
#   make test   the same setup, then the test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
CORES ?= 2
TARGET ?= results/nusc/iter2.miou results/nusc/full.miou results/nusc/summary.md

.PHONY: demo test setup lint overlays clean-results

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@bash .ci/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# Install torch only if the venv has none, and then pinned: an unpinned torch pulls a CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/snakemake --cores $(CORES) $(TARGET)

test: setup
	$(VENV)/bin/python -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/snakemake --lint

# LiDAR points on CAM_FRONT: the real sample of ../shared/realdata and the first synthetic sample.
overlays: setup
	$(VENV)/bin/snakemake --cores $(CORES) resources/nusc/raw
	$(PY) -m weak3d.overlay --out overlays --world resources/nusc/raw --version v1.0-weak3d

clean-results:
	rm -rf results logs benchmarks
