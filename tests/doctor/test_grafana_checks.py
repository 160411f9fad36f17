"""Grafana checks against recorded responses of Grafana's documented HTTP API (no Grafana
runs here; fixtures/grafana/README.md cites the documentation of each shape)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from doctor.model import Status
from doctor.shipped import DATASOURCE_UID, load_dashboards
from tests.doctor.fake_http import FakeServer, Reply
from tests.doctor.support import by_name, results_for

FIXTURES = Path(__file__).parent / "fixtures" / "grafana"
DATASOURCE_HEALTH = f"/api/datasources/uid/{DATASOURCE_UID}/health"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def dashboard_reply(uid: str, title: str) -> Reply:
    text = (FIXTURES / "dashboard-by-uid.json").read_text()
    return 200, json.loads(text.replace("{{uid}}", uid).replace("{{title}}", title))


def healthy_routes() -> dict[str, Any]:
    routes: dict[str, Any] = {
        "/api/health": (200, fixture("health.json")),
        DATASOURCE_HEALTH: (200, fixture("datasource-health-ok.json")),
    }
    for dashboard in load_dashboards():
        routes[f"/api/dashboards/uid/{dashboard.uid}"] = dashboard_reply(
            dashboard.uid, dashboard.title
        )
    return routes


def test_healthy_grafana_passes_and_sends_the_token() -> None:
    with FakeServer(healthy_routes()) as grafana:
        results = results_for("grafana", grafana=grafana.url, grafana_token="glsa_token")
    assert [r.status for r in results] == [Status.PASS] * 3, results
    detail = by_name(results)["TestBoost dashboards provisioned"].detail
    assert "3/3 provisioned" in detail and "TestBoost Overview" in detail
    authenticated = [h for path, h in grafana.requests if path != "/api/health"]
    assert authenticated and all(h["Authorization"] == "Bearer glsa_token" for h in authenticated)


def test_basic_auth_when_user_and_password_are_given() -> None:
    with FakeServer(healthy_routes()) as grafana:
        results_for("grafana", grafana=grafana.url, grafana_user="admin", grafana_password="pw")
    expected = "Basic " + base64.b64encode(b"admin:pw").decode()
    assert {h["Authorization"] for _, h in grafana.requests} == {expected}


def test_not_given_is_skipped() -> None:
    assert {r.status for r in results_for("grafana")} == {Status.SKIP}


@pytest.mark.parametrize(
    ("route", "reply", "check", "words"),
    [
        ("/api/health", (503, fixture("health-db-failing.json")), "health", "HTTP 503"),
        (
            DATASOURCE_HEALTH,
            (400, fixture("datasource-health-error.json")),
            f"datasource {DATASOURCE_UID}",
            "error returned querying the Prometheus API",
        ),
        (
            DATASOURCE_HEALTH,
            (404, fixture("datasource-not-found.json")),
            f"datasource {DATASOURCE_UID}",
            f"no datasource with uid {DATASOURCE_UID}",
        ),
        (
            DATASOURCE_HEALTH,
            (401, fixture("unauthorized.json")),
            f"datasource {DATASOURCE_UID}",
            "--grafana-token",
        ),
        (
            "/api/dashboards/uid/testboost-http-errors",
            (404, fixture("dashboard-not-found.json")),
            "TestBoost dashboards provisioned",
            "missing: testboost-http-errors (HTTP 404)",
        ),
    ],
)
def test_each_failure_names_its_cause(route: str, reply: Reply, check: str, words: str) -> None:
    routes = healthy_routes()
    routes[route] = reply
    with FakeServer(routes) as grafana:
        results = by_name(results_for("grafana", grafana=grafana.url, grafana_token="t"))
    assert results[check].status is Status.FAIL
    assert words in results[check].detail
    assert results[check].hint
    others = [r for name, r in results.items() if name != check]
    # Grafana unhealthy is Grafana down: its other checks are not run.
    expected = (Status.SKIP, "grafana") if check == "health" else (Status.PASS, None)
    assert all((r.status, r.cause) == expected for r in others), others


def test_a_dashboard_imported_by_hand_is_not_provisioned() -> None:
    routes = healthy_routes()
    _, body = routes["/api/dashboards/uid/testboost-overview"]
    body["meta"]["provisioned"] = False
    with FakeServer(routes) as grafana:
        result = by_name(results_for("grafana", grafana=grafana.url))[
            "TestBoost dashboards provisioned"
        ]
    assert result.status is Status.FAIL
    assert "testboost-overview (not provisioned)" in result.detail


def test_unauthorized_dashboards_say_which_flag_to_pass() -> None:
    routes = healthy_routes()
    for dashboard in load_dashboards():
        routes[f"/api/dashboards/uid/{dashboard.uid}"] = (401, fixture("unauthorized.json"))
    with FakeServer(routes) as grafana:
        result = by_name(results_for("grafana", grafana=grafana.url))[
            "TestBoost dashboards provisioned"
        ]
    assert result.status is Status.FAIL and "--grafana-user" in result.detail
