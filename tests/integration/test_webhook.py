"""Alertmanager's webhook: stored once per (fingerprint, startsAt), resolved in place."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import AppFactory

# Shaped like what Alertmanager 0.25+ posts (webhook payload version 4).
FIRING: dict[str, Any] = {
    "receiver": "critical-receiver",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighLLMErrorRate",
                "severity": "critical",
                "provider": "openai",
            },
            "annotations": {
                "summary": "LLM error rate above 5%",
                "description": "12.5% of LLM calls to openai failed",
                "runbook_url": "docs/runbooks.md#highllmerrorrate",
            },
            "startsAt": "2026-11-27T05:00:00.123Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
            "fingerprint": "5c7f9c2a1b3d4e6f",
        }
    ],
    "groupLabels": {"alertname": "HighLLMErrorRate"},
    "commonLabels": {"alertname": "HighLLMErrorRate", "severity": "critical"},
    "commonAnnotations": {"summary": "LLM error rate above 5%"},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": '{}/{severity="critical"}:{alertname="HighLLMErrorRate"}',
    "truncatedAlerts": 0,
}


def resolved() -> dict[str, Any]:
    payload = copy.deepcopy(FIRING)
    payload["status"] = "resolved"
    payload["alerts"][0]["status"] = "resolved"
    payload["alerts"][0]["endsAt"] = "2026-11-27T05:20:00Z"
    return payload


def post(client: TestClient, payload: Any) -> Any:
    return client.post("/api/v1/alerts/webhook", json=payload)


def test_firing_then_resent_then_resolved_is_one_row(client: TestClient) -> None:
    first = post(client, FIRING)
    assert first.status_code == 200 and first.json() == {"received": 1, "created": 1, "updated": 0}
    again = post(client, FIRING)
    assert again.json() == {"received": 1, "created": 0, "updated": 1}
    alerts = client.get("/api/v1/alerts").json()
    assert alerts["total"] == 1
    alert = alerts["items"][0]
    assert alert["status"] == "firing" and alert["ends_at"] is None
    assert alert["alertname"] == "HighLLMErrorRate" and alert["severity"] == "critical"
    assert alert["notifications"] == 2 and alert["receiver"] == "critical-receiver"
    assert alert["annotations"]["runbook_url"] == "docs/runbooks.md#highllmerrorrate"

    assert post(client, resolved()).json()["updated"] == 1
    alert = client.get("/api/v1/alerts").json()["items"][0]
    assert alert["status"] == "resolved"
    assert alert["ends_at"].startswith("2026-11-27T05:20:00")
    # A late, re-sent firing notification does not reopen it.
    post(client, FIRING)
    assert client.get("/api/v1/alerts").json()["items"][0]["status"] == "resolved"


def test_a_new_occurrence_is_a_new_row_and_filters_work(client: TestClient) -> None:
    post(client, FIRING)
    later = copy.deepcopy(FIRING)
    later["alerts"][0]["startsAt"] = "2026-11-27T06:00:00Z"
    other = copy.deepcopy(FIRING)
    other["alerts"][0].update(
        fingerprint="aa", labels={"alertname": "SlowAPIResponse", "severity": "warning"}
    )
    post(client, later)
    post(client, other)
    post(client, resolved())
    assert client.get("/api/v1/alerts").json()["total"] == 3
    assert client.get("/api/v1/alerts", params={"status": "firing"}).json()["total"] == 2
    by_name = client.get("/api/v1/alerts", params={"alertname": "SlowAPIResponse"}).json()
    assert by_name["total"] == 1 and by_name["items"][0]["severity"] == "warning"
    assert client.get("/api/v1/alerts", params={"status": "open"}).status_code == 422


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("alerts"),
        lambda p: p.update(version="3"),
        lambda p: p["alerts"][0].pop("fingerprint"),
        lambda p: p["alerts"][0].update(startsAt="yesterday"),
        lambda p: p["alerts"][0].update(status="exploded"),
        lambda p: p["alerts"][0].update(labels=["not", "a", "map"]),
        lambda p: p.update(alerts="nope"),
    ],
)
def test_malformed_payloads_are_422(client: TestClient, mutate: Any) -> None:
    payload = copy.deepcopy(FIRING)
    mutate(payload)
    response = post(client, payload)
    assert response.status_code == 422, response.text
    assert client.get("/api/v1/alerts").json()["total"] == 0


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b"null", b"\xff\xfe"])
def test_garbage_bodies_are_4xx(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/api/v1/alerts/webhook", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500


def test_oversized_body_is_413(make_client: AppFactory) -> None:
    client = make_client(max_body_bytes=4096)
    big = copy.deepcopy(FIRING)
    big["alerts"][0]["annotations"]["description"] = "x" * 10_000
    response = post(client, big)
    assert response.status_code == 413 and "4096" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield b"x" * 1000

    streamed = client.post(
        "/api/v1/alerts/webhook", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_concurrent_deliveries_count_every_notification(client: TestClient) -> None:
    """Alertmanager replicas deliver the same group at once: no notification is lost, and
    an alert's last delivery is never before its first."""
    deliveries, alerts = 6, 300
    payload = copy.deepcopy(FIRING)
    template = payload["alerts"][0]
    payload["alerts"] = [{**template, "fingerprint": f"fp{i:04d}"} for i in range(alerts)]
    # Separate clients: each thread its own connection to the same app.
    clients = [TestClient(client.app, base_url=str(client.base_url)) for _ in range(deliveries)]
    with ThreadPoolExecutor(deliveries) as pool:
        answers = list(pool.map(lambda c: post(c, payload), clients))
    assert [a.status_code for a in answers] == [200] * deliveries, [a.text for a in answers]
    assert sum(a.json()["created"] for a in answers) == alerts
    assert sum(a.json()["updated"] for a in answers) == alerts * (deliveries - 1)
    rows = []
    for offset in range(0, alerts, 500):
        page = client.get("/api/v1/alerts", params={"limit": 500, "offset": offset}).json()
        rows += page["items"]
    assert len(rows) == alerts
    assert sorted({r["notifications"] for r in rows}) == [deliveries]
    for row in rows:
        first = datetime.fromisoformat(row["first_received_at"])
        assert datetime.fromisoformat(row["last_received_at"]) >= first, row
