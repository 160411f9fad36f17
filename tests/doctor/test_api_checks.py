"""API checks against the real app in process (pull, push, off, metrics token, API key), and
the states a running app rarely shows (database down, nothing listening)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from doctor.model import Status
from telemetry import TelemetryConfig
from telemetry.catalog import CATALOG
from tests.conftest import BASE_URL, AppFactory
from tests.doctor.fake_http import FakeServer
from tests.doctor.support import by_name, results_for, unreachable_hint
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.waiting import session_in

METRICS, FAMILIES = "/metrics reachable", "catalog families and labels"
KEY = "API key accepted"


def run_a_session(client: TestClient, headers: dict[str, str] | None = None) -> None:
    created = client.post(
        "/api/v2/sessions",
        json={"session_type": "impact_analysis", "project_path": "/p"},
        headers=headers,
    )
    session_in(client, created.json()["id"], "completed", headers=headers)


def test_pull_mode_app_passes(client: TestClient) -> None:
    run_a_session(client)
    results = by_name(results_for("api", client, api=BASE_URL))
    assert results.pop(KEY).status is Status.SKIP  # no key given
    assert {r.status for r in results.values()} == {Status.PASS}
    assert results[METRICS].detail.startswith("pull mode (prometheus)")
    assert results[FAMILIES].detail == f"{len(CATALOG)}/{len(CATALOG)} families"


def test_metrics_token_is_sent_and_required(make_client: AppFactory) -> None:
    client = make_client(metrics_token="s3cret")
    missing = by_name(results_for("api", client, api=BASE_URL))
    assert missing[METRICS].status is Status.FAIL
    assert "needs a bearer token (no token given)" in missing[METRICS].detail
    assert "--metrics-token" in missing[METRICS].hint
    wrong = by_name(results_for("api", client, api=BASE_URL, metrics_token="nope"))
    assert "the token given was refused" in wrong[METRICS].detail
    given = by_name(results_for("api", client, api=BASE_URL, metrics_token="s3cret"))
    assert {r.status for name, r in given.items() if name != KEY} == {Status.PASS}


def test_api_key_is_checked_where_the_webhook_presents_it(make_client: AppFactory) -> None:
    client = make_client(api_key="the-key")
    accepted = by_name(results_for("api", client, api=BASE_URL, api_key="the-key"))[KEY]
    assert (accepted.status, accepted.detail) == (
        Status.PASS,
        "GET /api/v1/alerts with the key: 200",
    )
    refused = by_name(results_for("api", client, api=BASE_URL, api_key="another"))[KEY]
    assert refused.status is Status.FAIL
    assert refused.detail == "GET /api/v1/alerts with the key: HTTP 401 (the key given is refused)"
    assert f"{BASE_URL}/api/v1/alerts" in refused.hint and "credentials_file" in refused.hint
    none = by_name(results_for("api", client, api=BASE_URL))[KEY]
    assert (none.status, none.detail) == (Status.SKIP, "no --api-key given")


def test_push_mode_is_recognised_and_reported(
    make_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        client = make_client(telemetry=TelemetryConfig(metrics_exporter="otlp"))
        results = by_name(results_for("api", client, api=BASE_URL))
        client.__exit__(None, None, None)
    assert {r.status for name, r in results.items() if name != KEY} == {Status.PASS}
    assert results[METRICS].detail.startswith("push mode (OTLP)")
    assert "checked in Prometheus instead" in results[FAMILIES].detail


def test_metrics_turned_off_fails(make_client: AppFactory) -> None:
    client = make_client(telemetry=TelemetryConfig(metrics_exporter="none"))
    results = by_name(results_for("api", client, api=BASE_URL))
    assert results[METRICS].status is Status.FAIL
    assert "metrics turned off" in results[METRICS].detail
    assert "OTEL_METRICS_EXPORTER=none" in results[METRICS].hint


def test_unhealthy_api_names_the_failing_dependency() -> None:
    body = {"status": "unhealthy", "checks": {"database": {"status": "failing"}}}
    with FakeServer({"/health": (503, body)}) as api:
        result = by_name(results_for("api", api=api.url))["/health"]
    assert result.status is Status.FAIL
    assert result.detail == "HTTP 503; failing: database"
    assert "TESTBOOST_DATABASE_URL" in result.hint


def test_unreachable_api_fails_once_with_the_start_hint_the_rest_skipped() -> None:
    with FakeServer() as server:
        url = server.url  # a port nobody listens on once the server is closed
    health, *others = results_for("api", api=url, api_key="k", timeout=2)
    assert health.status is Status.FAIL and "unreachable" in health.detail
    assert health.hint == unreachable_hint("api", api=url)
    assert f"`curl -i {url}/health`" in health.hint
    assert {(r.status, r.cause, r.detail, r.hint) for r in others} == {
        (Status.SKIP, "api", "api is down (its '/health' check failed)", "")
    }
