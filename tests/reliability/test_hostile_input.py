"""Nothing a client sends breaks the service for others (issue 14): values SQLite would store
but PostgreSQL refuses, values no response can encode, and dates that overflow are a clear 422
on both backends, before anything is stored; error bodies stay small."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from httpx import Response
from starlette.testclient import TestClient

from tests.conftest import AppFactory
from tests.integration.test_webhook import FIRING

SURROGATE = "\udfff"  # a lone surrogate: valid JSON (`"\udfff"`), but not encodable as UTF-8
CREATE = {"session_type": "impact_analysis", "project_path": "/srv/app"}


def send(client: TestClient, method: str, path: str, body: Any) -> Response:
    """JSON as a client may write it: lone surrogates escaped, NaN and Infinity allowed."""
    return client.request(
        method,
        path,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )


def assert_clear_422(response: Response, *words: str) -> None:
    assert response.status_code == 422, response.text
    text = response.content.decode("utf-8")  # encodable, whatever the input held
    assert all(word in text for word in words), text


def the_service_still_serves_others(client: TestClient) -> None:
    created = client.post("/api/v2/sessions", json=CREATE)
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    assert client.get("/api/v2/sessions").status_code == 200
    assert client.get(f"/api/v2/sessions/{session_id}").status_code == 200
    assert client.post(f"/api/v2/sessions/{session_id}/pause").status_code in (200, 409)
    assert client.post(f"/api/v2/sessions/{session_id}/cancel").status_code in (200, 409)
    assert client.get("/api/v1/alerts").status_code == 200


@pytest.mark.parametrize(
    "body,words",
    [
        ({**CREATE, "config": {"k": SURROGATE}}, ["surrogate"]),
        ({**CREATE, "config": {SURROGATE: 1}}, ["surrogate"]),
        ({**CREATE, "project_path": "/p" + SURROGATE}, ["surrogate"]),
        ({**CREATE, "session_type": SURROGATE}, ["session_type"]),  # fails validation anyway
        ({**CREATE, "surprise" + SURROGATE: SURROGATE * 3}, ["surprise"]),
        ({**CREATE, "project_path": "/p\x00"}, ["NUL"]),
        ({**CREATE, "config": {"k": "a\x00b"}}, ["NUL"]),
        ({**CREATE, "config": {"k\x00": 1}}, ["NUL"]),
        ({**CREATE, "config": {"k": float("nan")}}, ["finite"]),
        ({**CREATE, "config": {"k": float("inf")}}, ["finite"]),
        ({**CREATE, "config": {"k": float("-inf")}}, ["finite"]),
        ({**CREATE, "project_path": "p" * 1025}, ["1024"]),
    ],
    ids=[
        "surrogate-config-value",
        "surrogate-config-key",
        "surrogate-project-path",
        "surrogate-in-invalid-field",
        "surrogate-in-unknown-field",
        "nul-project-path",
        "nul-config-value",
        "nul-config-key",
        "nan",
        "infinity",
        "minus-infinity",
        "project-path-too-long",
    ],
)
def test_hostile_session_bodies_are_422_and_store_nothing(
    client: TestClient, body: dict[str, Any], words: list[str]
) -> None:
    assert_clear_422(send(client, "POST", "/api/v2/sessions", body), *words)
    assert client.get("/api/v2/sessions").json()["total"] == 0
    the_service_still_serves_others(client)


def test_1e400_is_not_a_number_we_store(client: TestClient) -> None:
    body = b'{"session_type": "impact_analysis", "project_path": "/p", "config": {"k": 1e400}}'
    response = client.post(
        "/api/v2/sessions", content=body, headers={"content-type": "application/json"}
    )
    assert_clear_422(response, "finite")
    assert client.get("/api/v2/sessions").json()["total"] == 0


@pytest.mark.parametrize(
    "config",
    [{"k": SURROGATE}, {"k": "\x00"}, {"k": float("nan")}],
    ids=["surrogate", "nul", "nan"],
)
def test_a_hostile_patch_changes_nothing(client: TestClient, config: dict[str, Any]) -> None:
    created = client.post("/api/v2/sessions", json={**CREATE, "mode": "interactive"}).json()
    response = send(client, "PATCH", f"/api/v2/sessions/{created['id']}", {"config": config})
    assert response.status_code in (409, 422), response.text  # 409: it was not paused yet
    assert client.get(f"/api/v2/sessions/{created['id']}").json()["config"] == {}
    the_service_still_serves_others(client)


def alert_with(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(FIRING)
    alert = payload["alerts"][0]
    for name, value in changes.items():
        if name in ("alertname", "severity"):
            alert["labels"][name] = value
        else:
            alert[name] = value
    return payload


@pytest.mark.parametrize(
    "payload,words",
    [
        (alert_with(alertname="a\x00"), ["NUL"]),
        (alert_with(severity="critical\x00"), ["NUL"]),
        (alert_with(fingerprint="ab\x00"), ["NUL"]),
        (alert_with(generatorURL="http://p/\x00"), ["NUL"]),
        (alert_with(annotations={"summary": SURROGATE}), ["surrogate"]),
        (alert_with(labels={SURROGATE: "x", "alertname": "A"}), ["surrogate"]),
        ({**alert_with(), "receiver": "r\x00"}, ["NUL"]),
        ({**alert_with(), "groupKey": SURROGATE}, ["surrogate"]),
        (alert_with(severity="s" * 41), ["40"]),
        (alert_with(alertname="a" * 201), ["200"]),
        (alert_with(fingerprint="f" * 65), ["64"]),
        (alert_with(startsAt="9999-12-31T23:59:59-14:00"), ["startsAt"]),
        (alert_with(startsAt="0001-01-01T00:00:00+01:00"), ["startsAt"]),
        (alert_with(status="resolved", endsAt="9999-12-31T23:59:59-14:00"), ["endsAt"]),
    ],
    ids=[
        "nul-alertname",
        "nul-severity",
        "nul-fingerprint",
        "nul-generator-url",
        "surrogate-annotation",
        "surrogate-label-name",
        "nul-receiver",
        "surrogate-group-key",
        "severity-over-column",
        "alertname-over-column",
        "fingerprint-over-column",
        "starts-at-overflows-utc",
        "starts-at-underflows-utc",
        "ends-at-overflows-utc",
    ],
)
def test_hostile_webhook_payloads_are_422_and_store_nothing(
    client: TestClient, payload: dict[str, Any], words: list[str]
) -> None:
    assert_clear_422(send(client, "POST", "/api/v1/alerts/webhook", payload), *words)
    assert client.get("/api/v1/alerts").json()["total"] == 0
    the_service_still_serves_others(client)


def test_nul_in_query_and_path_parameters_is_never_a_500(client: TestClient) -> None:
    assert_clear_422(client.get("/api/v1/alerts", params={"alertname": "a\x00"}), "NUL")
    for method, path in [
        ("GET", "/api/v2/sessions/%00"),
        ("GET", "/api/v2/sessions/%00/steps"),
        ("DELETE", "/api/v2/sessions/%00"),
        ("POST", "/api/v2/sessions/%00/pause"),
        ("POST", "/api/v2/sessions/%00/resume"),
        ("POST", "/api/v2/sessions/%00/cancel"),
    ]:
        response = client.request(method, path)
        assert response.status_code in (404, 422), (method, path, response.text)
    patch = client.patch("/api/v2/sessions/%00", json={"mode": "interactive"})
    assert patch.status_code in (404, 422), patch.text


def test_error_bodies_are_bounded(client: TestClient) -> None:
    # 800 kB echoed back in full was a 3.2 MB answer.
    huge = send(
        client, "POST", "/api/v2/sessions", {"session_type": "x", "project_path": "p" * 800_000}
    )
    assert huge.status_code == 422
    assert len(huge.content) < 4096, len(huge.content)
    # Thousands of invalid items: the errors are capped, and the body says how many there were.
    many = copy.deepcopy(FIRING)
    many["alerts"] = [{"status": "exploded", "labels": {"x": "y" * 100}}] * 5000
    response = send(client, "POST", "/api/v1/alerts/webhook", many)
    assert response.status_code == 422
    assert len(response.content) < 16_384, len(response.content)
    assert len(response.json()["detail"]) <= 20
    assert "errors" in response.json()["detail"][-1]["msg"]


@pytest.mark.parametrize("path", ["/api/v2/sessions/", "/health/", "/metrics/", "/docs/"])
def test_a_redirect_never_takes_its_host_from_the_request(
    make_client: AppFactory, path: str
) -> None:
    """The trailing-slash redirect answered `Location: http://<Host header>/...`: an open
    redirect's shape, with no key needed. Now a relative reference on this API."""
    client = make_client()
    response = client.get(
        f"{path}?limit=2", headers={"Host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 307
    assert response.headers["location"] == f"{path.rstrip('/')}?limit=2"


def test_a_large_delivery_does_not_starve_other_writers(make_client: AppFactory) -> None:
    """A delivery of 1,500 alerts is stored in batches: sessions created meanwhile are not
    held behind it (on SQLite one transaction held the write lock for the whole delivery)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tests.integration.test_webhook import post

    client = make_client()
    payload = copy.deepcopy(FIRING)
    template = payload["alerts"][0]
    payload["alerts"] = [{**template, "fingerprint": f"fp{i:05d}"} for i in range(1500)]
    delivered = threading.Event()
    latencies: list[float] = []

    def create_sessions() -> None:
        other = TestClient(client.app, base_url=str(client.base_url))
        while not delivered.is_set():
            started = time.monotonic()
            body = {"session_type": "test_generation", "project_path": "/p"}
            assert other.post("/api/v2/sessions", json=body).status_code == 201
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)

    with ThreadPoolExecutor(1) as pool:
        writer = pool.submit(create_sessions)
        started = time.monotonic()
        answer = post(client, payload)
        took = time.monotonic() - started
        delivered.set()
        writer.result()
    assert answer.status_code == 200 and answer.json()["created"] == 1500
    assert len(latencies) >= 3, (took, latencies)
    # Each session waits for one batch at most, not for the delivery.
    assert max(latencies) < max(2.0, took / 3), (took, max(latencies))


def test_a_session_config_is_bounded_so_a_page_is(make_client: AppFactory) -> None:
    """50 keys of 20 kB each fitted the body limit, and 100 such sessions made a list page of
    about 100 MB; a config is now at most 16 KiB as JSON, a page of 100 about 1.6 MB."""
    client = make_client()
    big = {f"k{i}": "x" * 20_000 for i in range(50)}
    body = {"session_type": "test_generation", "project_path": "/p", "config": big}
    refused = client.post("/api/v2/sessions", json=body)
    assert refused.status_code == 422
    assert "16384 bytes" in refused.text and len(refused.content) < 4096
    near = {f"k{i}": "x" * 300 for i in range(50)}  # ~16 KiB less the JSON around it
    for _ in range(3):
        created = client.post("/api/v2/sessions", json={**body, "config": near})
        assert created.status_code == 201, created.text
        patched = client.patch(f"/api/v2/sessions/{created.json()['id']}", json={"config": big})
        assert patched.status_code == 422
    page = client.get("/api/v2/sessions", params={"limit": 100})
    assert len(page.content) < 3 * 17 * 1024


@pytest.mark.parametrize(
    ("location", "relative"),
    [
        (b"http://evil.example/api/v2/sessions?limit=2", b"/api/v2/sessions?limit=2"),
        (b"http://h//evil.example/x", b"/evil.example/x"),  # never `//host`: another host
        (b"//evil.example/x", b"/x"),
        (b"/api/v2/sessions", b"/api/v2/sessions"),
    ],
)
def test_a_location_is_made_relative_and_keeps_one_slash(location: bytes, relative: bytes) -> None:
    from app.core.redirects import _relative

    assert _relative(location) == relative
