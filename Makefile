# MaskCLIP-Lightning. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Offline by default: no model-hub retries, no W&B network traffic.
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: help install test test-full test-min test-gpu demo app bench bench-gpu world-clip world-proxy world-claims world-fresh clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv and install the project (editable, with dev extras)

test: install ## Run the fast CPU test suite (offline)
	WANDB_MODE=disabled $(PY) -m pytest -m "not slow and not gpu" -q

test-full: install ## Run every test that this machine can run, slow ones included
	WANDB_MODE=disabled $(PY) -m pytest -m "not gpu" -q

test-min: ## The fast suite against the lower dependency bounds (constraints-min.txt) in .venv-min; not in CI
	$(PYTHON) -m venv .venv-min
	.venv-min/bin/python -m pip install --quiet --upgrade pip
	.venv-min/bin/python -m pip install --quiet -c constraints-min.txt -e '.[dev]'
	WANDB_MODE=disabled NO_ALBUMENTATIONS_UPDATE=1 .venv-min/bin/python -m pytest -m "not slow and not gpu" -q -p no:cacheprovider --import-mode=importlib

test-gpu: install ## Run the CUDA checks (tests marked gpu; needs a GPU)
	WANDB_MODE=disabled $(PY) -m pytest -m gpu -q

demo: install ## MaskCLIP on the offline world: table, overlays, W&B offline run (CPU, no download)
	$(PY) scripts/demo.py

app: install ## The labelling page (python -m src.app): prints its address (ARGS='teacher.pretrained=...')
	$(PY) -m src.app $(ARGS)

world-clip: install ## Re-train the offline world's CLIP (~35 min on 2 CPU cores)
	$(PY) scripts/pretrain_world_clip.py

world-proxy: install ## Re-train the offline world's proxy ViT (~30 min on 2 CPU cores)
	$(PY) scripts/pretrain_world_proxy.py

world-claims: install ## Measure the paper's claims on the offline world (docs/world_claims.md)
	$(PY) scripts/world_claims.py

world-fresh: install ## The world's claims as mean ± std over fresh worlds (docs/world_fresh.md, ~33 min on 2 cores)
	$(PY) scripts/world_fresh.py

bench: install ## Speed and memory ratios (python -m scripts.bench): bench.json, bench.md, bench_resolution.png
	$(PY) -m scripts.bench --out docs/bench.json --markdown docs/bench.md

bench-gpu: install ## The same benchmark on CUDA in bf16: docs/bench_gpu.json, docs/bench_gpu.md
	$(PY) -m scripts.bench --device cuda --out docs/bench_gpu.json --markdown docs/bench_gpu.md

clean: ## Remove logs, caches and build artefacts (keeps .venv)
	rm -rf logs outputs multirun .pytest_cache bench.json bench.md
	find . -name __pycache__ -prune -exec rm -rf {} +
