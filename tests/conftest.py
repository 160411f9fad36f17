"""Shared fixtures: a fresh database per test (SQLite, and PostgreSQL when configured), and
apps built on it with the lifespan running, as `uvicorn` would run them."""

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
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
# Loopback, as a real client would be: the key-less API refuses anything else.
BASE_URL = "http://127.0.0.1:8000"


def pytest_report_header() -> str:
    return f"database backends: {', '.join(BACKENDS)}" + (
        "" if POSTGRES_URL else " (TESTBOOST_TEST_POSTGRES_URL unset: PostgreSQL not tested)"
    )


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
