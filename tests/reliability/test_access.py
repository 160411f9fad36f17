"""Access: keys never logged, CORS off unless configured."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import AppFactory

KEY = "very-secret-api-key-1234"


def test_api_key_is_never_logged(make_client: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(api_key=KEY, metrics_token="metrics-secret-987")
    client.get("/api/v2/sessions", headers={"X-API-Key": KEY})
    client.get("/api/v2/sessions", headers={"X-API-Key": KEY + "x"})
    client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    client.post(
        "/api/v2/sessions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"session_type": "impact_analysis", "project_path": "/p"},
    )
    assert caplog.records, "expected some logging to inspect"
    assert KEY not in caplog.text and "metrics-secret-987" not in caplog.text
    assert KEY not in repr(client.app.state.settings)


def test_cors_is_off_by_default(make_client: AppFactory) -> None:
    client = make_client()
    response = client.options(
        "/api/v2/sessions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in response.headers
    plain = client.get("/api/v2/sessions", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in plain.headers


def test_cors_allows_only_configured_origins(make_client: AppFactory) -> None:
    client = make_client(cors_origins=["https://ops.example"])
    allowed = client.get("/api/v2/sessions", headers={"Origin": "https://ops.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
    other = client.get("/api/v2/sessions", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
