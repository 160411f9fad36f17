"""The real chain in pull mode: API → Prometheus (scrape, the shipped rules) → Alertmanager
(the shipped routing) → the API's webhook. Only addresses, the key file and timings differ
from the committed configs (devstack.configs)."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import Stack
from tests.e2e.conftest import StackFactory
from tests.e2e.helpers import (
    LLM_LATENCY_S,
    SESSIONS,
    Prometheus,
    Workload,
    api_client,
    assert_catalog_families,
    cancel_sessions,
    concurrently,
    create_sessions,
    expr_of,
    finite,
    llm_env,
    run_workload,
    without_fallback,
)
from tests.monitoring.queries import dashboard_queries
from tests.support.fake_llm import FakeLLM
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

# The pool: 25 + 5 overflow = 30 connections; 27 held is exactly the alert's 90 %, and leaves
# 3 for the metrics collection (active sessions count) and stray work.
POOL_ENV = {"TESTBOOST_DB_POOL_SIZE": "25", "TESTBOOST_DB_MAX_OVERFLOW": "5"}
HELD = 27
SLOW_S = 6.0  # SlowAPIResponse: p95 above 5 s
# Panels that only show 5xx answers: the workload makes none (2xx, 401, 404, 422), so they
# show their `or on() vector(0)` fallback, which must still answer.
ONLY_5XX = "5xx Error Rate"


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory, fake: FakeLLM) -> Stack:
    return make_stack(mode="pull", api_env={**llm_env(fake), **POOL_ENV})


@pytest.fixture(scope="module")
def prometheus(stack: Stack, prometheus_of: Any) -> Prometheus:
    result: Prometheus = prometheus_of(stack)
    return result


@pytest.fixture(scope="module")
def workload(stack: Stack, fake: FakeLLM, prometheus: Prometheus) -> Workload:
    return run_workload(stack, fake, prometheus)


# --- 1. the scrape ----------------------------------------------------------------------------


def test_api_target_is_up_and_every_family_has_its_contract_labels(
    stack: Stack, prometheus: Prometheus, workload: Workload
) -> None:
    targets = prometheus.http.get("/api/v1/targets").json()["data"]["activeTargets"]
    api = [t for t in targets if t["labels"]["job"] == "testboost-api"]
    assert len(api) == 1
    assert api[0]["health"] == "up" and api[0]["lastError"] == ""
    assert api[0]["scrapeUrl"] == f"{stack.urls['api']}/metrics"
    # The target's address: one series per replica, never a constant.
    assert api[0]["labels"]["instance"] == httpx.URL(stack.urls["api"]).netloc.decode()
    assert_catalog_families(prometheus)


# --- 2. the dashboards ------------------------------------------------------------------------


@pytest.mark.usefixtures("workload")
def test_every_dashboard_query_returns_data(prometheus: Prometheus) -> None:
    for dashboard, panel, expr in dashboard_queries():
        where = f"{dashboard} / {panel}: {expr}"
        assert finite(prometheus.query(expr)), where
        if panel != ONLY_5XX:
            assert finite(prometheus.query(without_fallback(expr))), f"fallback only: {where}"


@pytest.mark.usefixtures("workload")
def test_quantile_panels_answer_in_seconds(prometheus: Prometheus) -> None:
    llm_p50 = finite(
        prometheus.query(
            "histogram_quantile(0.50, sum by (le, provider) "
            "(rate(testboost_llm_request_duration_seconds_bucket[5m])))"
        )
    )
    # The fake LLM answers in 50 ms: a median in ms (50) or in minutes would be outside.
    assert llm_p50 and all(0.01 < v < 1 for v in llm_p50), llm_p50
    assert LLM_LATENCY_S == 0.05
    for _dashboard, panel, expr in dashboard_queries():
        if "histogram_quantile" in expr:
            values = finite(prometheus.query(expr))
            assert values, panel
            # Everything here takes well under a minute (workflows ~0.3 s, requests ~ms).
            assert all(0 <= v < 60 for v in values), (panel, values)


def test_counts_are_what_was_done(
    prometheus: Prometheus, workload: Workload, fake: FakeLLM
) -> None:
    assert prometheus.value("sum(testboost_llm_calls_total)") == fake.count
    assert prometheus.value("sum(testboost_llm_rate_limit_total)") == workload.rate_limits
    assert prometheus.value("sum(testboost_llm_errors_total)") == workload.errors
    assert prometheus.value('sum(testboost_workflow_total{status="completed"})') == (
        workload.sessions
    )
    for status, count in workload.rejected.items():
        assert prometheus.value(f'sum(testboost_http_requests_total{{status="{status}"}})') == (
            count
        )


# --- 3. each alert's condition, reached for real, on the shipped expression -----------------


@pytest.mark.usefixtures("workload")
def test_llm_alert_conditions(prometheus: Prometheus) -> None:
    # 12 errors in ~100 attempts, and 12 rate limits (> 10) within the hour.
    assert prometheus.query(expr_of("HighLLMErrorRate"))
    assert prometheus.query(expr_of("LLMRateLimitHit"))


def test_too_many_active_sessions_condition(stack: Stack, prometheus: Prometheus) -> None:
    expr = expr_of("TooManyActiveSessions")
    with api_client(stack) as api:
        ids = create_sessions(api, 51, mode="interactive")  # each pauses after its first step
        try:
            result = prometheus.wait(expr, message="51 active sessions")
            assert float(result[0]["value"][1]) == 51
        finally:
            cancel_sessions(api, ids)
    prometheus.wait(expr, lambda r: not r, message="sessions cancelled")


def test_pool_exhausted_and_slow_api_conditions(stack: Stack, prometheus: Prometheus) -> None:
    """Another client holds SQLite's write lock (a long migration, a backup): session creations
    queue on it, each holding a pooled connection, and take longer than 5 s."""
    pool_expr, slow_expr = expr_of("DBConnectionPoolExhausted"), expr_of("SlowAPIResponse")
    prometheus.wait_value("sum(testboost_db_connection_pool_max)", 30)
    assert not prometheus.query(pool_expr)
    results: list[int] = []
    with api_client(stack) as api:

        def create() -> None:
            body = {"session_type": "impact_analysis", "project_path": "/slow"}
            results.append(api.post(SESSIONS, json=body).status_code)

        lock = _write_lock(stack)
        try:
            started = time.monotonic()
            runner = threading.Thread(target=concurrently, args=([create] * HELD, HELD))
            runner.start()
            held = prometheus.wait(pool_expr, message=f"{HELD}/30 connections checked out")
            assert float(held[0]["value"][1]) >= 0.9
            time.sleep(max(0.0, SLOW_S - (time.monotonic() - started)))
        finally:
            lock.rollback()
            lock.close()
        runner.join(timeout=60)
    assert results == [201] * HELD
    slow = prometheus.wait(slow_expr, message="p95 of POST /api/v2/sessions above 5 s")
    assert [s["metric"]["path"] for s in slow] == [SESSIONS]
    assert 5 < float(slow[0]["value"][1]) <= 10  # in the (5, 10] bucket
    prometheus.wait(pool_expr, lambda r: not r, message="pool released")


def _write_lock(stack: Stack) -> sqlite3.Connection:
    database = Path(stack.database_url.removeprefix("sqlite:///"))
    connection = sqlite3.connect(database, timeout=10, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")  # readers go on (WAL); writers wait
    return connection


def test_slow_workflow_alert_has_its_bucket(prometheus: Prometheus) -> None:
    """SlowWorkflowExecution needs 5-minute workflows: promtool covers its firing
    (monitoring/prometheus/tests/workflows.yml); here, its expression runs on real data
    and the 300 s boundary it relies on is a real bucket."""
    buckets = prometheus.query("testboost_workflow_duration_seconds_bucket")
    assert buckets
    assert 300.0 in {float(s["metric"]["le"]) for s in buckets}
    assert prometheus.query(expr_of("SlowWorkflowExecution")) == []


def test_health_check_failed_condition(stack: Stack, prometheus: Prometheus) -> None:
    expr = expr_of("HealthCheckFailed")
    assert not prometheus.query(expr)
    stack.stop("api", signal.SIGKILL)
    try:
        result = prometheus.wait(expr, message="up == 0 once the API is killed")
        assert result[0]["metric"]["instance"] == httpx.URL(stack.urls["api"]).netloc.decode()
    finally:
        stack.start("api")
    prometheus.wait(expr, lambda r: not r, message="up again")


# --- 4. one alert, the whole way --------------------------------------------------------------


def test_alert_travels_to_the_inbox_and_resolves(stack: Stack, prometheus: Prometheus) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    alertmanager = httpx.Client(base_url=stack.urls["alertmanager"], timeout=10)
    with api_client(stack) as api, alertmanager:
        ids = create_sessions(api, 51, mode="interactive")
        try:
            prometheus.wait(
                'ALERTS{alertname="TooManyActiveSessions", alertstate="firing"}',
                message="Prometheus fires TooManyActiveSessions",
            )
            routed = until(
                lambda: [
                    a
                    for a in alertmanager.get(
                        "/api/v2/alerts", params={"filter": 'alertname="TooManyActiveSessions"'}
                    ).json()
                    if a["status"]["state"] == "active"
                ],
                timeout=20,
                message="Alertmanager holds the alert",
            )
            assert [r["name"] for r in routed[0]["receivers"]] == ["warning-receiver"]
            firing = until(
                lambda: _inbox(api, "firing", since), timeout=20, message="the webhook delivery"
            )
        finally:
            cancel_sessions(api, ids)
        assert firing["severity"] == "warning" and firing["receiver"] == "warning-receiver"
        assert firing["annotations"]["summary"] == "More than 50 active sessions"
        resolved = until(
            lambda: _inbox(api, "resolved", since), timeout=30, message="the resolution"
        )
        assert resolved["id"] == firing["id"] and resolved["ends_at"] is not None
    # Every delivery authenticated: the webhook never answered anything but 200.
    assert not prometheus.query(
        'testboost_http_requests_total{path="/api/v1/alerts/webhook", status!="200"} > 0'
    )


def _inbox(api: httpx.Client, status: str, since: datetime) -> dict[str, Any] | None:
    page = api.get(
        "/api/v1/alerts", params={"alertname": "TooManyActiveSessions", "status": status}
    ).json()
    for item in page["items"]:
        if datetime.fromisoformat(item["starts_at"]) >= since:
            return dict(item)
    return None
