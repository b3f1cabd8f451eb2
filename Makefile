# The front door: `make dev` starts the whole service on embedded parts, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian's Prometheus, unpacked for the test that scrapes a worker and a gateway (tests/support/prometheus.py).
PROMETHEUS := $(VENV)/prometheus/usr/bin/prometheus
# Azurite (Azure Blob Storage's emulator) from npm, for the AzureBlob destination's tests and `make azurite`.
AZURITE := .tools/node_modules/.bin/azurite-blob
# fakesnow (Snowflake's emulator) in a venv of its own: its DuckDB and sqlglot pins are not the project's, and the
# connector 5.x it would pull no longer works with it. For the Snowflake destination's tests and `make snowflake`.
FAKESNOW := .tools/fakesnow/bin/fakesnow
# Debian's Chromium, headless, for the test that loads the API's docs page in a real browser (tests/e2e/test_docs_page.py).
CHROMIUM := /usr/bin/chromium
# bqemulator (BigQuery's emulator, DuckDB inside) in a venv of its own: it pins a sqlglot the project cannot share.
# DuckDB's extensions come from their wheels, the same version as duckdb, so that nothing downloads when it starts.
BQEMULATOR := .tools/bqemulator/bin/bqemulator
BQEMULATOR_DUCKDB := 1.5.5

.PHONY: dev demo test test-unit test-core lint worker api azurite redshift snowflake bigquery warehouses clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BQEMULATOR):
	$(PYTHON) -m venv .tools/bqemulator
	.tools/bqemulator/bin/pip install --quiet "bqemulator==1.4.0" "sqlglot>=30.9,<30.12" "numpy>=1.26" \
		"duckdb==$(BQEMULATOR_DUCKDB)" "duckdb-extension-avro==$(BQEMULATOR_DUCKDB)" \
		"duckdb-extension-spatial==$(BQEMULATOR_DUCKDB)"

$(AZURITE):
	npm install --prefix .tools --no-audit --no-fund azurite@3.35.0

$(FAKESNOW):
	$(PYTHON) -m venv .tools/fakesnow
	.tools/fakesnow/bin/pip install --quiet 'fakesnow[server]==0.12.1' 'snowflake-connector-python>=4.8,<5'

dev: $(STAMP)
	$(BIN)/python -m entrypoints.dev

# Beside a running `make dev`: three exports, a backfill of the last 15 minutes, records out within two minutes.
demo: $(STAMP)
	$(BIN)/python -m entrypoints.demo

# Every tier (unit, core, e2e) on TEST_WORKERS pytest-xdist processes, each with services of its own, a test
# module whole on one of them, the ones that time what they do one after another (tests/conftest.py). The tests
# mostly wait: on the quiet 2-core machine three kept it 118% busy and took 570 s; four took 527 to 534 s, but
# Chromium's page load then timed out once.
TEST_WORKERS ?= 3
test: $(STAMP) $(PROMETHEUS) $(AZURITE) $(FAKESNOW) $(BQEMULATOR) $(CHROMIUM)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

$(CHROMIUM):
	apt-get install -y -qq --no-install-recommends chromium || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }

$(PROMETHEUS):
	sh tests/support/install_prometheus.sh $(VENV)/prometheus

# Azurite beside `make dev`: port 10000 (BATCH_EXPORTS_AZURITE_PORT), data under .data/azurite, a container `exports`.
azurite: $(STAMP) $(AZURITE)
	$(BIN)/python -m entrypoints.azurite

# Redshift beside `make dev`: its PostgreSQL's database redshift_dev with SUPER and JSON_PARSE, as PostHog tests Redshift.
redshift: $(STAMP)
	$(BIN)/python -m entrypoints.redshift

# fakesnow beside `make dev`: port 8085 (BATCH_EXPORTS_FAKESNOW_PORT); prints the worker's setting and a config.
snowflake: $(STAMP) $(FAKESNOW)
	$(BIN)/python -m entrypoints.snowflake

# bqemulator beside `make dev`: port 9050, a dataset `exports`; prints the setting the worker needs and a config.
bigquery: $(STAMP) $(BQEMULATOR)
	$(BIN)/python -m entrypoints.bigquery

# All three warehouses' local servers beside `make dev`, each printing the setting the worker needs and a config.
warehouses: $(STAMP) $(FAKESNOW) $(BQEMULATOR)
	$(MAKE) --no-print-directory -j3 redshift snowflake bigquery

# The unit tier alone: no services, about 15 s.
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The core tier alone: the run domain's rules over in-memory ports, no services, a few seconds.
test-core: $(STAMP)
	$(BIN)/python -m pytest tests/core $(PYTEST_ARGS)

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
