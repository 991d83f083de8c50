# One entry point for people and CI. Every target builds the venv from the lock first.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
# A range run (the backfill) records one 'planned' event per asset, not one per day and asset.
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= true
export EA_DATA_DIR ?= $(CURDIR)/data
export EA_LANDING_DIR ?= $(EA_DATA_DIR)/landing
export EA_CONFIG_DIR ?= $(CURDIR)/config
export DUCKDB_DATABASE ?= $(EA_DATA_DIR)/warehouse.duckdb
export EA_ANALYST_DATABASE ?= $(EA_DATA_DIR)/analyst.duckdb
export MLFLOW_TRACKING_URI ?= sqlite:///$(EA_DATA_DIR)/mlflow.db
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install install-spark demo test test-fast lint ui inbox serve mlflow-ui bench clean browser

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PY) >/dev/null || { echo "Python 3.11 is needed: set PY=/path/to/python3.11"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/python -m uv pip sync --quiet --python $(BIN)/python --compile-bytecode requirements.lock
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@mkdir -p $(DAGSTER_HOME) && cp -n dagster.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true
	@touch $(STAMP)

install: $(STAMP)

# The Spark extra (pyspark + dbt-spark, ~490 MB, needs Java 17): a superset of requirements.lock,
# so syncing it keeps everything the default install has. `make test` needs it; `make demo` does not.
$(SPARK_STAMP): $(STAMP) requirements-spark.lock
	$(BIN)/python -m uv pip sync --quiet --python $(BIN)/python --compile-bytecode requirements-spark.lock
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(SPARK_STAMP)

install-spark: $(SPARK_STAMP)

demo: $(STAMP)
	$(BIN)/ea demo

test: $(SPARK_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/sqlfluff lint dbt_project/models

# The Dagster UI (port 3000) and the alert inbox (EA_PUBLIC_URL, default port 3001) together, and,
# while mail goes to the local default relay, the capture server (the inbox's sign-in emails land in
# data/mail/). Stopping `make ui` stops them all.
ui: $(STAMP)
	@pids=""; \
	if [ "$${SMTP_HOST:-127.0.0.1}" = 127.0.0.1 ]; then \
	  $(BIN)/ea mail-capture --port $${SMTP_PORT:-8025} --dir $(EA_DATA_DIR)/mail & pids="$$!"; fi; \
	$(BIN)/ea inbox serve & pids="$$pids $$!"; \
	trap 'kill $$pids 2>/dev/null' EXIT INT TERM; \
	$(BIN)/dagster dev -w workspace.yaml -p 3000

inbox: $(STAMP)
	$(BIN)/ea inbox serve

# The Dagster UI and daemon, the inbox and the MLflow server, supervised: a crashed one is
# restarted, Ctrl-C stops them all (docs/operations.md). ENV_FILE=/path/ea.env runs the profile
# that file describes (the production profile: deploy/ea.env.example).
serve: $(STAMP)
	$(BIN)/python -m orchestration.cli $(if $(ENV_FILE),--env-file $(ENV_FILE)) serve

# Debian's chromium + chromedriver (browser tests) and fonts-inter (the inbox's font), when missing.
browser:
	@bash tests/browser/install.sh

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) -p 5000

bench: $(STAMP)
	$(BIN)/ea bench

clean:
	rm -rf $(VENV) .dagster_home data/landing data/*.duckdb* data/mlflow* data/outbox data/mail dbt_project/target
