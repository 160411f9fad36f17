"""The contract on /metrics after a real workload: names, types, labels, buckets, and counts
that match what happened exactly once. Guards against the defects of the previous release
(no `_bucket`, requests counted twice, constant pool gauges, active sessions never set)."""

from __future__ import annotations

import random
import string

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from app.workflows.definitions import SessionType
from telemetry.catalog import CATALOG, LLM_ERROR_TYPES, UNMATCHED_PATH, Kind
from telemetry.exporters import MetricsEndpoint
from tests.conftest import AppFactory
from tests.support.exposition import Exposition
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.waiting import session_in, until


def scrape(client: TestClient) -> Exposition:
    response = client.get("/metrics")
    assert response.status_code == 200
    return Exposition(response.text)


def family_key(name: str, kind: Kind) -> str:
    # The parser names counter families without `_total`.
    return name.removesuffix("_total") if kind is Kind.COUNTER else name


@pytest.fixture
def fake() -> FakeLLM:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def worked(make_client: AppFactory, fake: FakeLLM) -> tuple[TestClient, FakeLLM, list[str]]:
    """Every session type run through a real OpenAI-compatible server that rate-limits,
    fails and times out along the way."""
    fake.then(
        Reply(429, {}, {"Retry-After": "0"}),
        Reply(500, {}),
        Reply(401, {}),
        Reply(429, {}, {"Retry-After": "0"}),
    )
    client = make_client(
        llm_base_url=fake.base_url,
        llm_provider="openai",
        llm_model="gpt-test",
        llm_max_retry_wait=0.0,
        db_pool_size=3,
        db_max_overflow=2,
    )
    ids = []
    for session_type in SessionType:
        response = client.post(
            "/api/v2/sessions", json={"session_type": session_type.value, "project_path": "/repo"}
        )
        ids.append(response.json()["id"])
    for session_id in ids:
        session_in(client, session_id, "completed", "failed")
    return client, fake, ids


def test_every_family_has_its_type_labels_and_buckets(worked) -> None:
    client, _fake, _ids = worked
    exposition = scrape(client)
    for family in CATALOG:
        key = family_key(family.name, family.kind)
        assert exposition.types.get(key) == family.kind.value, family.name
        for series in family.series_names:
            samples = exposition.series(series)
            assert samples, f"{series} missing"
            for sample in samples:
                expected = set(family.labels) | ({"le"} if series.endswith("_bucket") else set())
                assert set(sample.labels) == expected, (series, sample.labels)
        if family.kind is Kind.HISTOGRAM:
            bounds = {s.labels["le"] for s in exposition.series(family.name + "_bucket")}
            assert bounds == {repr(float(b)) for b in family.buckets} | {"+Inf"}


def test_no_scope_or_resource_labels_anywhere(worked) -> None:
    client, _fake, _ids = worked
    text = client.get("/metrics").text
    assert "otel_scope" not in text and "target_info" not in text
    assert "service_name" not in text and "job=" not in text


def test_llm_counters_equal_what_the_provider_saw(worked) -> None:
    client, fake, _ids = worked
    exposition = scrape(client)
    assert (
        exposition.value("testboost_llm_calls_total", provider="openai", model="gpt-test")
        == fake.count
    )
    assert exposition.value("testboost_llm_errors_total", error_type="rate_limit") == 2
    assert exposition.value("testboost_llm_errors_total", error_type="server_error") == 1
    assert exposition.value("testboost_llm_errors_total", error_type="auth") == 1
    assert exposition.value("testboost_llm_errors_total") == 4
    assert exposition.value("testboost_llm_rate_limit_total", provider="openai") == 2
    assert exposition.value("testboost_llm_request_duration_seconds_count") == fake.count


def test_workflow_counts_match_sessions_and_histogram(worked) -> None:
    client, _fake, ids = worked
    exposition = scrape(client)
    sessions = [client.get(f"/api/v2/sessions/{i}").json() for i in ids]
    # The 401 is not retried: exactly one session failed on it.
    assert sorted(s["status"] for s in sessions) == ["completed"] * 3 + ["failed"]
    assert exposition.value("testboost_workflow_total") == 4
    assert exposition.value("testboost_workflow_total", status="failed") == 1
    assert exposition.value("testboost_workflow_duration_seconds_count") == 4
    for session in sessions:
        assert (
            exposition.value(
                "testboost_workflow_total",
                workflow_type=session["session_type"],
                status=session["status"],
            )
            == 1
        )
    assert exposition.value("testboost_active_sessions") == 0


def test_http_requests_are_counted_once_by_route_template(client: TestClient) -> None:
    before = scrape(client)
    route = "/api/v2/sessions/{session_id}"
    for _ in range(7):
        assert client.get("/api/v2/sessions/missing").status_code == 404
    after = scrape(client)
    delta = after.value(
        "testboost_http_requests_total", method="GET", path=route, status="404"
    ) - before.value("testboost_http_requests_total", method="GET", path=route, status="404")
    assert delta == 7
    hist = after.value("testboost_http_request_duration_seconds_count", method="GET", path=route)
    assert (
        hist
        - before.value("testboost_http_request_duration_seconds_count", method="GET", path=route)
        == 7
    )
    # The scrape itself is a request too, counted once per scrape.
    metrics_before = before.value("testboost_http_requests_total", path="/metrics")
    assert after.value("testboost_http_requests_total", path="/metrics") == metrics_before + 1


def test_client_controlled_values_add_no_series(client: TestClient) -> None:
    # Warm-up: the one unmatched series per method class, and the scrape's own series.
    client.get("/warm-up-unmatched")
    client.request("PROPFIND", "/warm-up-unmatched")
    scrape(client)
    before = scrape(client)
    rng = random.Random(7)
    for _ in range(300):
        junk = "".join(rng.choices(string.ascii_letters, k=12))
        client.get(
            f"/{junk}/{junk}?q={junk}", headers={"Host": f"{junk}.example", "User-Agent": junk}
        )
        client.request(rng.choice(["PROPFIND", "BREW", "get"]), f"/{junk}")
    after = scrape(client)

    def series(e):
        return {
            (s.name, tuple(sorted(s.labels.items())))
            for s in e.samples
            if s.name.startswith("testboost_http")
        }

    assert series(after) == series(before)
    assert after.value("testboost_http_requests_total", path=UNMATCHED_PATH) >= 600


def test_active_sessions_and_pool_gauges_follow_reality(make_client: AppFactory) -> None:
    client = make_client(
        llm_sim_latency=5.0, db_pool_size=4, db_max_overflow=3, max_concurrent_workflows=2
    )
    ids = [
        client.post(
            "/api/v2/sessions", json={"session_type": "test_generation", "project_path": "/p"}
        ).json()["id"]
        for _ in range(3)
    ]
    until(lambda: scrape(client).value("testboost_active_sessions") == 3, message="3 active")
    exposition = scrape(client)
    assert exposition.value("testboost_db_connection_pool_max") == 7
    held = [client.app.state.engine.connect() for _ in range(5)]
    try:
        assert scrape(client).value("testboost_db_connection_pool_size") >= 5
    finally:
        for connection in held:
            connection.close()
    assert scrape(client).value("testboost_db_connection_pool_size") <= 1
    client.post(f"/api/v2/sessions/{ids[0]}/pause")
    assert scrape(client).value("testboost_active_sessions") == 3  # paused is still active
    for session_id in ids:
        client.post(f"/api/v2/sessions/{session_id}/cancel")
    exposition = scrape(client)
    assert exposition.value("testboost_active_sessions") == 0
    assert exposition.value("testboost_workflow_total", status="cancelled") == 3


def test_metrics_endpoint_shape(make_client: AppFactory) -> None:
    client = make_client()
    plain = client.get("/metrics", follow_redirects=False)
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/plain")
    assert plain.headers["x-testboost-metrics-exporter"] == "prometheus"
    zipped = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "testboost_db_connection_pool_max" in zipped.text  # httpx decompressed it


def test_metrics_token(make_client: AppFactory) -> None:
    client = make_client(metrics_token="scrape-me")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert ok.status_code == 200 and "testboost_active_sessions" in ok.text


@pytest.mark.parametrize(
    "raw,matches",
    [(b"cl\xc3\xa9", True), (b"cl\xe9", False), (b" cl\xc3\xa9\t", True), (b"cle", False)],
)
def test_the_metrics_token_follows_the_api_keys_rules(raw: bytes, matches: bool) -> None:
    """The bytes sent against the token's UTF-8 bytes, HTTP whitespace trimmed (as the API key,
    tests/integration/test_auth.py); a raw ASGI scope, since test clients re-encode headers."""
    endpoint = MetricsEndpoint(None, "prometheus", "clé")
    request = Request({"type": "http", "headers": [(b"authorization", b"Bearer " + raw)]})
    assert endpoint._authorized(request) is matches


def test_known_counter_series_start_at_zero(client: TestClient) -> None:
    """increase() only sees events after a series' first scrape: the first rate limit after
    start-up must not be lost, so every closed label set exists from the start."""
    exposition = scrape(client)
    errors = {
        s.labels["error_type"]: s.value for s in exposition.series("testboost_llm_errors_total")
    }
    assert errors == dict.fromkeys(LLM_ERROR_TYPES, 0.0)
    assert exposition.value("testboost_llm_rate_limit_total", provider="simulated") == 0
    assert len(exposition.series("testboost_workflow_total")) == len(SessionType) * 3


def test_metrics_answer_fast_while_the_pool_is_exhausted(make_client: AppFactory) -> None:
    """The moment DBConnectionPoolExhausted should fire is the moment a scrape must not wait
    for the request pool."""
    import time

    client = make_client(db_pool_size=2, db_max_overflow=0, db_pool_timeout=10)
    held = [client.app.state.engine.connect() for _ in range(2)]
    try:
        started = time.monotonic()
        exposition = scrape(client)
        assert time.monotonic() - started < 2
        assert exposition.value("testboost_db_connection_pool_size") == 2
        assert exposition.value("testboost_db_connection_pool_max") == 2
        assert exposition.series("testboost_active_sessions")
    finally:
        for connection in held:
            connection.close()
