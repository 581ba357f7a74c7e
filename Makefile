# The two commands a user needs: `make demo` and `make test`. Both set up the environment first.
SHELL := /bin/bash
PYTHON ?= python3
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
UV := $(shell command -v uv 2>/dev/null || echo $(ROOT)/.tools/bin/uv)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
DEMO_HOME ?= $(ROOT)/.demo
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: setup demo test lint typecheck unit bench clean help

help:
	@echo "make demo   - set up (if needed) and run the ML lifecycle demo on embedded defaults"
	@echo "make test   - set up (if needed) and run ruff, mypy and the whole test suite"
	@echo "make bench  - run the benchmarks in benchmarks/"
	@echo "make lint   - ruff check + format check;  make clean - remove demo state"
	@echo "make stack / stack-demo / stack-status / stack-down - the production topology on this machine"

$(ROOT)/.tools/bin/uv:
	$(PYTHON) -m venv $(ROOT)/.tools
	$(ROOT)/.tools/bin/pip install --quiet --disable-pip-version-check "uv>=0.5"

$(VENV)/.synced: $(ROOT)/pyproject.toml $(ROOT)/uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python 3.11
	@touch $@

setup: $(VENV)/.synced

demo: setup
	AIRFLOW_HOME=$${AIRFLOW_HOME:-$(DEMO_HOME)/airflow} MLOPS_PROJECT_ROOT=$(ROOT) \
	  PYTHONPATH=$(ROOT) $(PY) -m include.demo $(DEMO_ARGS)

lint: setup
	$(VENV)/bin/ruff check provider dags include tests benchmarks stack
	$(VENV)/bin/ruff format --check provider dags include tests benchmarks stack

typecheck: setup
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(DEMO_HOME) .pytest-airflow

# The production topology as processes on this machine (see stack/stack.py); state in .stack/.
.PHONY: stack stack-down stack-status
stack: setup
	$(PY) -m stack.stack up

stack-down:
	$(PY) -m stack.stack down

stack-status:
	$(PY) -m stack.stack status

# The lifecycle on that stack, driven by the scheduler (restarts it from empty state; --keep in
# STACK_DEMO_ARGS reuses it as it is).
.PHONY: stack-demo
stack-demo: setup
	$(PY) -m stack.lifecycle $(STACK_DEMO_ARGS)
