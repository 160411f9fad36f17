# TestBoost — every target installs what it needs first, so a fresh clone needs only Python 3.11+.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
HOST ?= 127.0.0.1
PORT ?= 8000
# PostgreSQL used by the DB tests when reachable (this machine kind serves one, trust auth).
TESTBOOST_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export TESTBOOST_TEST_POSTGRES_URL

.PHONY: install tools run test test-unit lint stack stack-down bench clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# The stamp makes `make run` cheap once installed; it is redone when the lock changes.
$(VENV)/.installed: $(UV) uv.lock pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet
	touch $@

install: $(VENV)/.installed

# Prometheus, Alertmanager, promtool, amtool, vmagent, docker-compose into .tools/ (never committed).
tools:
	scripts/install-tools.sh

run: install
	$(VENV)/bin/testboost serve --host $(HOST) --port $(PORT)

test: install tools
	scripts/check-postgres.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy app telemetry
	$(VENV)/bin/pytest

test-unit: install
	$(VENV)/bin/pytest tests/unit

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app telemetry

clean:
	rm -rf $(VENV) var .tools .pytest_cache .mypy_cache .ruff_cache
