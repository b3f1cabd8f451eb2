# The front door: `make dev` starts the whole service on embedded parts, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian's Prometheus, unpacked for the test that scrapes a worker and a gateway (tests/support/prometheus.py).
PROMETHEUS := $(VENV)/prometheus/usr/bin/prometheus
# Azurite (Azure Blob Storage's emulator) from npm, for the AzureBlob destination's tests and `make azurite`.
AZURITE := .tools/node_modules/.bin/azurite-blob
# Debian's Chromium, headless, for the test that loads the API's docs page in a real browser (tests/e2e/test_docs_page.py).
CHROMIUM := /usr/bin/chromium

.PHONY: dev demo test test-unit lint worker api azurite clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(AZURITE):
	npm install --prefix .tools --no-audit --no-fund azurite@3.35.0

dev: $(STAMP)
	$(BIN)/python -m entrypoints.dev

# Beside a running `make dev`: three exports, a backfill of the last 15 minutes, records out within two minutes.
demo: $(STAMP)
	$(BIN)/python -m entrypoints.demo

# Every tier (unit, core, e2e) on TEST_WORKERS pytest-xdist processes, each with services of its own, a test
# module whole on one of them, the ones that time what they do one after another (tests/conftest.py). On the
# 2-core machine (shared, load 3 to 10) three took 9 min 55 s where one took 30 min; four took longer.
TEST_WORKERS ?= 3
test: $(STAMP) $(PROMETHEUS) $(AZURITE) $(CHROMIUM)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

$(CHROMIUM):
	apt-get install -y -qq --no-install-recommends chromium || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }

$(PROMETHEUS):
	sh tests/support/install_prometheus.sh $(VENV)/prometheus

# Azurite beside `make dev`: port 10000 (BATCH_EXPORTS_AZURITE_PORT), data under .data/azurite, a container `exports`.
azurite: $(STAMP) $(AZURITE)
	$(BIN)/python -m entrypoints.azurite

# The unit tier alone: no services, about 15 s.
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
	rm -rf $(VENV) .data .tools .pytest_cache .mypy_cache .ruff_cache
