"""PostgreSQL stops while the API runs: clear 503s, /metrics keeps serving, workflows wait
and finish once the database is back, nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from telemetry import TelemetryConfig
from tests.conftest import BASE_URL, settings_for
from tests.support.exposition import Exposition
from tests.support.private_postgres import PrivatePostgres
from tests.support.waiting import session_in, until


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()


def test_api_survives_a_database_outage(
    postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        settings_for(postgres.url, llm_sim_latency=0.3, db_pool_timeout=2),
        TelemetryConfig(new_series_hold_ms=0),
    )
    with TestClient(app, base_url=BASE_URL) as client:
        created = client.post(
            "/api/v2/sessions", json={"session_type": "test_generation", "project_path": "/p"}
        ).json()
        session_in(client, created["id"], "in_progress")

        postgres.stop()
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"]["database"]["status"] == "failing"
        for method, path in (
            ("GET", "/api/v2/sessions"),
            ("GET", f"/api/v2/sessions/{created['id']}"),
            ("POST", "/api/v2/sessions"),
            ("GET", "/api/v1/alerts"),
        ):
            response = client.request(
                method, path, json={"session_type": "impact_analysis", "project_path": "/q"}
            )
            assert response.status_code == 503, (path, response.text)
            assert response.json() == {"detail": "database unavailable; retry shortly"}
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        exposition = Exposition(metrics.text)
        # No made-up value while the database cannot be counted; the pool is still read.
        assert exposition.series("testboost_active_sessions") == []
        assert exposition.series("testboost_db_connection_pool_max")
        assert exposition.value("testboost_http_requests_total", status="503") >= 4

        # The running workflow meets the outage at its next step and waits.
        until(
            lambda: "Database unavailable for session" in caplog.text,
            timeout=10,
            message="the workflow to notice the outage",
        )
        postgres.start()
        until(lambda: client.get("/health").status_code == 200, timeout=30, message="health back")
        done = session_in(client, created["id"], "completed", "failed", timeout=60)
        assert done["status"] == "completed"
        steps = client.get(f"/api/v2/sessions/{created['id']}/steps").json()
        assert [s["status"] for s in steps] == ["completed"] * 4
        exposition = Exposition(client.get("/metrics").text)
        assert exposition.value("testboost_active_sessions") == 0
        assert exposition.value("testboost_workflow_total", status="completed") == 1
