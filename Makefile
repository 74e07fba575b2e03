# Everything runs inside .venv/ in the repo root; `make install` creates it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_DIR ?= outputs/demo
PYTEST_ARGS ?=

.PHONY: install test test-fast demo lint format clean

install: $(STAMP)

# torch is pinned first so nothing later can pull a multi-GB CUDA build; deepspeed builds from source
# against that torch, so it goes in without build isolation.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-build-isolation setuptools wheel deepspeed
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

# The main job on the embedded default: the tiny tower's one-off pretraining and its features of the suite
# (cached), the tiny sweep (4 LLMs x 3 T x 2 seeds, 2 points at a time) on the synthetic suite, then one
# scaling-law fit per category. Re-running it skips what is done.
demo: install
	$(PY) -m vlmscale.tower_pretrain --threads 1
	$(PY) -m vlmscale.features build +sweep=tiny threads=1
	$(PY) -m vlmscale.train +sweep=tiny hydra.sweep.dir=$(DEMO_DIR)/sweep
	$(PY) -m analysis demo $(DEMO_DIR)/sweep --categories reasoning,ocr --bootstrap 200 --out $(DEMO_DIR)/fit
	@echo "results table: $(DEMO_DIR)/sweep/results.csv"
	@echo "fits and plots: $(DEMO_DIR)/fit/{reasoning,ocr}/ and $(DEMO_DIR)/fit/split.png (both categories side by side)"

lint: install
	$(PY) -m ruff check vlmscale analysis hydra_plugins tests benchmarks
	$(PY) -m ruff format --check vlmscale analysis hydra_plugins tests benchmarks

format: install
	$(PY) -m ruff format vlmscale analysis hydra_plugins tests benchmarks
	$(PY) -m ruff check --fix vlmscale analysis hydra_plugins tests benchmarks

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .ruff_cache
