"""Shared fixtures: a fresh database per test (SQLite, and PostgreSQL when configured), and
apps built on it with the lifespan running, as `uvicorn` would run them; and the rule that
splits the suite into the fast tier and the rest."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from telemetry import TelemetryConfig

POSTGRES_URL = os.environ.get("TESTBOOST_TEST_POSTGRES_URL", "")
BACKENDS: list[Any] = ["sqlite"]
if POSTGRES_URL:
    BACKENDS.append(pytest.param("postgres", marks=pytest.mark.postgres))
# Loopback, as a real client would be: the key-less API refuses anything else.
BASE_URL = "http://127.0.0.1:8000"


# `make test-fast` runs `pytest -m "not slow"`: what runs in this Python process (or a
# short-lived Python one), on SQLite, with no binary from .tools/, no Docker, no PostgreSQL, no
# browser and no network. `slow` is never written by hand: a test is slow when it carries one
# of these markers...
SLOW_MARKERS = ("e2e", "tools", "docker", "postgres")
# ...or starts a process, needs a binary or takes long without a marker saying so (node-id
# prefixes).
NOT_FAST = (
    "tests/bench_smoke/",  # the bench harness: valgrind, wrk, API processes
    "tests/deploy/",  # the wheel in a fresh venv, the image, the compose stack
    "tests/docs/test_doc_commands.py::test_documented_commands_run_as_written",  # make run, …
    "tests/integration/test_docs_page.py::test_swagger_ui_",  # in a real browser
    "tests/integration/test_serve_start.py",  # `testboost serve`
    "tests/reliability/test_access.py::test_no_secret_reaches_",  # an API process's log
    "tests/reliability/test_alertmanager_ha.py::test_one_alertmanager_",  # finds the binary
    "tests/reliability/test_database_outage.py",  # a PostgreSQL cluster of its own
    "tests/reliability/test_schema_fuzz.py",  # in-process, but a fuzzer: ~20 s of CPU
    # The API under uvicorn (tests/support/api_process.py):
    "tests/reliability/test_exporter_outage.py",
    "tests/reliability/test_hostile_soak.py",
    "tests/reliability/test_metrics_dir.py",
    "tests/reliability/test_request_limits.py",
    "tests/reliability/test_shutdown.py",
    "tests/reliability/test_slow_readers.py",
    "tests/reliability/test_soak.py",
    "tests/reliability/test_two_processes.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marked = any(item.get_closest_marker(name) for name in SLOW_MARKERS)
        if marked or item.nodeid.startswith(NOT_FAST):
            item.add_marker(pytest.mark.slow)


def pytest_report_header() -> str:
    if POSTGRES_URL:
        return "database backends: sqlite, postgres (its cases are `slow`)"
    return "database backends: sqlite (TESTBOOST_TEST_POSTGRES_URL unset: PostgreSQL not tested)"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return POSTGRES_URL


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """A database nobody else uses: a SQLite file, or a throw-away PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'testboost.db'}"
        return
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"testboost_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "llm_sim_latency": 0.005,
        "max_concurrent_workflows": 4,
    }
    values.update(overrides)
    return Settings(**values)


AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(database_url: str) -> Iterator[AppFactory]:
    """Build apps on this test's database; each client runs the app's lifespan."""
    clients: list[TestClient] = []

    def build(telemetry: TelemetryConfig | None = None, **overrides: Any) -> TestClient:
        app = create_app(
            settings_for(database_url, **overrides),
            telemetry or TelemetryConfig(new_series_hold_ms=0),
        )
        client = TestClient(app, base_url=BASE_URL)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    return make_client()
