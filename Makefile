# TestBoost — every target installs what it needs first, so a fresh clone needs only Python 3.11+.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
HOST ?= 127.0.0.1
PORT ?= 8000
# The local stack's other ports (make stack / stack-push).
PROMETHEUS_PORT ?= 9090
ALERTMANAGER_PORT ?= 9093
COLLECTOR_PORT ?= 4318
JAEGER_PORT ?= 16686
STACK_PORTS = --api-port $(PORT) --prometheus-port $(PROMETHEUS_PORT) \
	--alertmanager-port $(ALERTMANAGER_PORT) --otel-collector-port $(COLLECTOR_PORT) \
	--jaeger-port $(JAEGER_PORT)
# PostgreSQL the DB tests also run on: scripts/test-postgres.sh installs Debian's server when
# missing and starts a cluster of the project's own on this port (data in .tools/postgres/).
TESTBOOST_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:55432/postgres
export TESTBOOST_TEST_POSTGRES_URL

.PHONY: soak install tools docker run test test-fast lint rules slo-rules stack stack-push stack-down stack-status bench bench-smoke clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# The stamp makes `make run` cheap once installed; it is redone when the lock changes.
$(VENV)/.installed: $(UV) uv.lock pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet
	touch $@

install: $(VENV)/.installed

# Prometheus 2.53 and 3.5 and promtool into .tools/, Alertmanager, amtool, our OpenTelemetry
# Collector, Jaeger, Thanos, Helm and Sloth built from source (cached; never committed), and
# the Debian packages the tests use system-wide (chromium, valgrind, jq; listed in README).
tools:
	scripts/install-tools.sh

# A Docker engine (started when none answers), the compose v2 plugin, and the images the
# compose tests run (tests/deploy): a Debian base made offline and stand-ins for the upstream
# images. Cached in .tools/ and Docker's own layer cache.
docker: tools
	scripts/docker.sh

run: install
	$(VENV)/bin/testboost serve --host $(HOST) --port $(PORT)

# The local stack without Docker: API, Prometheus, Alertmanager (+ the OpenTelemetry Collector
# and Jaeger for push) as local processes on 127.0.0.1 only (devstack/), state and logs in
# var/stack/. Ports: PORT (API, 8000), PROMETHEUS_PORT, ALERTMANAGER_PORT, COLLECTOR_PORT,
# JAEGER_PORT (the compose ones by default); more options: `testboost stack up --help`.
# Each installs only the binaries its stack runs (pull: no collector, no Jaeger).
stack: install
	scripts/install-tools.sh prometheus alertmanager
	$(VENV)/bin/testboost stack up $(STACK_PORTS)

stack-push: install
	scripts/install-tools.sh prometheus alertmanager otelcol jaeger
	$(VENV)/bin/testboost stack up --push --traces $(STACK_PORTS)

stack-down:
	@if [ -x $(VENV)/bin/testboost ]; then $(VENV)/bin/testboost stack down; fi

stack-status: install
	$(VENV)/bin/testboost stack status

# Everything CI runs (.ci/run): `lint`, then every test, `slow` ones included.
test: lint tools docker
	scripts/test-postgres.sh
	$(VENV)/bin/pytest

# The edit loop: `lint` (ruff, mypy) and every test that runs in-process on SQLite, without
# .tools/, Docker or PostgreSQL; tests/conftest.py marks the rest `slow`. `make test` runs all.
test-fast: lint
	$(VENV)/bin/pytest -m "not slow"

# Benchmarks (bench/, results in docs/benchmarks.md): instructions per request (callgrind),
# API variants side by side under wrk, cardinality/memory, scrape rendering; ~12 minutes.
# wrk and valgrind come from Debian when missing.
# More options: `.venv/bin/python -m bench.run --help` (e.g. BENCH_ARGS="--phases scrape").
bench: install
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
		|| echo "wrk unavailable: the harness falls back to a Python load generator" >&2
	@command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; } \
		|| echo "valgrind unavailable: the instructions phase is skipped" >&2
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

# Every phase of `make bench`, tiny (~1-2 min); tests/bench_smoke runs the same under pytest.
bench-smoke: install
	$(VENV)/bin/python -m bench.run --smoke

# The long forms of the reliability tests (docs/reliability.md): 60 s collector outage
# phases, 200 sessions over 2 minutes. `make test` runs the short forms.
soak: install
	TESTBOOST_OUTAGE_SECONDS=60 TESTBOOST_SOAK_SECONDS=120 TESTBOOST_SOAK_SESSIONS=200 \
		TESTBOOST_HOSTILE_SOAK_SECONDS=180 \
		$(VENV)/bin/pytest -s tests/reliability/test_exporter_outage.py tests/reliability/test_collector_outage.py tests/reliability/test_soak.py tests/reliability/test_hostile_soak.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app cli telemetry doctor devstack bench \
		monitoring/prometheus/*.py docs/gen_metrics.py

rules: install
	$(VENV)/bin/python monitoring/prometheus/gen_alerts.py  # alerts.yml, pipeline-alerts.yml

# monitoring/prometheus/slo-rules.yml from the Sloth spec monitoring/slo/testboost.yml, by the
# Sloth `make tools` builds (docs/slo.md); tests/monitoring/test_slo.py fails when it drifts.
slo-rules: install
	scripts/install-tools.sh sloth
	$(VENV)/bin/python monitoring/prometheus/gen_slo_rules.py

clean:
	-scripts/test-postgres.sh stop
	rm -rf $(VENV) var .tools .pytest_cache .mypy_cache .ruff_cache
