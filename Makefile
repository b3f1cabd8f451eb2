# The front door: `make dev` starts the whole service on embedded parts, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian's Prometheus, unpacked for the test that scrapes a worker and a gateway (tests/support/prometheus.py).
PROMETHEUS := $(VENV)/prometheus/usr/bin/prometheus

.PHONY: dev test test-unit lint worker api clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/python -m entrypoints.dev

test: $(STAMP) $(PROMETHEUS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(PROMETHEUS):
	sh tests/support/install_prometheus.sh $(VENV)/prometheus

# The unit tier alone: no services, a few seconds.
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

worker: $(STAMP)
	$(BIN)/python worker.py

api: $(STAMP)
	$(BIN)/python -m api

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
