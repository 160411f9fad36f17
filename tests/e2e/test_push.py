"""Push mode: the API pushes OTLP to our OpenTelemetry Collector, whose /metrics page
Prometheus scrapes; Prometheus still scrapes the API's (empty) /metrics for `up`. The
dashboards must not tell the difference, nothing may be counted twice, and several worker
processes add up."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devstack import Stack
from tests.e2e.conftest import StackFactory
from tests.e2e.helpers import (
    SESSIONS,
    Prometheus,
    Series,
    Workload,
    api_client,
    assert_catalog_families,
    concurrently,
    expr_of,
    fake_llm,
    finite,
    llm_env,
    run_workload,
)
from tests.monitoring.queries import dashboard_queries
from tests.support.fake_llm import FakeLLM

pytestmark = pytest.mark.e2e

WEBHOOK = "/api/v1/alerts/webhook"


def labels_of(series: Series) -> set[frozenset[tuple[str, str]]]:
    """The label sets a query returned. Alert deliveries to the webhook depend on timing,
    so series about that path are left out of the comparison."""
    return {frozenset(s["metric"].items()) for s in series if s["metric"].get("path") != WEBHOOK}


@dataclass
class Run:
    stack: Stack
    prometheus: Prometheus
    fake: FakeLLM
    workload: Workload


@pytest.fixture(scope="module")
def side_by_side(make_stack: StackFactory, prometheus_of: Any) -> Iterator[dict[str, Run]]:
    """The same workload through a pull stack and a push stack, each with its own fake LLM."""
    with fake_llm() as pull_llm, fake_llm() as push_llm:
        fakes = {"pull": pull_llm, "push": push_llm}
        stacks = {
            mode: make_stack(mode=mode, api_env=llm_env(fake)) for mode, fake in fakes.items()
        }
        clients = {mode: prometheus_of(stack) for mode, stack in stacks.items()}
        done = concurrently(
            [
                lambda mode=mode: run_workload(stacks[mode], fakes[mode], clients[mode])
                for mode in stacks
            ],
            workers=2,
        )
        yield {
            mode: Run(stacks[mode], clients[mode], fakes[mode], workload)
            for mode, workload in zip(stacks, done, strict=True)
        }


def test_push_answers_every_dashboard_query_like_pull(side_by_side: dict[str, Run]) -> None:
    pull, push = side_by_side["pull"].prometheus, side_by_side["push"].prometheus
    assert push.query('up{job="testboost-api"}')[0]["value"][1] == "1"
    exporter = httpx.get(f"{side_by_side['push'].stack.urls['api']}/metrics")
    assert exporter.headers["x-testboost-metrics-exporter"] == "otlp"
    assert_catalog_families(push)
    for dashboard, panel, expr in dashboard_queries():
        pulled, pushed = pull.query(expr), push.query(expr)
        assert finite(pushed), f"{dashboard} / {panel}: no data in push mode"
        assert labels_of(pushed) == labels_of(pulled), f"{dashboard} / {panel}: {expr}"


def test_push_counts_what_was_done_once(side_by_side: dict[str, Run]) -> None:
    """Counted once: the scrape of /metrics brings only `up`; the push brings the rest."""
    run = side_by_side["push"]
    push, workload = run.prometheus, run.workload
    assert push.value("sum(testboost_llm_calls_total)") == run.fake.count
    assert push.value("sum(testboost_llm_rate_limit_total)") == workload.rate_limits
    assert push.value("sum(testboost_llm_errors_total)") == workload.errors
    assert push.value('sum(testboost_workflow_total{status="completed"})') == workload.sessions
    assert push.value("sum(testboost_workflow_duration_seconds_count)") == workload.sessions
    for status, count in workload.rejected.items():
        assert push.value(f'sum(testboost_http_requests_total{{status="{status}"}})') == count
    created = f'sum(testboost_http_requests_total{{path="{SESSIONS}", status="201"}})'
    assert push.value(created) == workload.sessions
    # Every testboost_* series came through the collector, none from the API's own scrape
    # (whose instance is the API's address; the collector's series carry the API process'
    # service.instance.id), and all under the API's job.
    target = httpx.URL(run.stack.urls["api"]).netloc.decode()
    assert push.query(f'count({{__name__=~"testboost_.+", instance="{target}"}})') == []
    assert push.query('count({__name__=~"testboost_.+", job!="testboost-api"})') == []


def test_push_alert_expressions_hold(side_by_side: dict[str, Run]) -> None:
    """The LLM alerts reach their condition on pushed data as on scraped data."""
    push = side_by_side["push"].prometheus
    assert push.query(expr_of("HighLLMErrorRate"))
    assert push.query(expr_of("LLMRateLimitHit"))


def test_push_up_drops_when_the_api_dies(side_by_side: dict[str, Run]) -> None:
    run = side_by_side["push"]
    run.stack.stop("api", signal.SIGKILL)
    result = run.prometheus.wait(
        expr_of("HealthCheckFailed"), message="up == 0 in push mode once the API is killed"
    )
    assert result[0]["metric"]["job"] == "testboost-api"


# --- 6. several workers -----------------------------------------------------------------------

REQUESTS = 60


def test_two_workers_count_every_request_once(make_stack: StackFactory, prometheus_of: Any) -> None:
    stack = make_stack(mode="push", workers=2)
    prometheus: Prometheus = prometheus_of(stack)
    # Both processes push (each primes its counters at start-up).
    prometheus.wait(
        "count(count by (instance) (testboost_db_connection_pool_max))",
        lambda r: bool(r) and r[0]["value"][1] == "2",
        timeout=30,
        message="two worker processes pushing",
    )

    def missing() -> int:
        # A new connection each time, so the kernel hands requests to either worker.
        with api_client(stack) as api:
            return api.get(f"{SESSIONS}/no-such-session").status_code

    assert concurrently([missing] * REQUESTS, workers=8) == [404] * REQUESTS
    counted = 'testboost_http_requests_total{path="/api/v2/sessions/{session_id}", status="404"}'
    prometheus.wait_value(f"sum({counted})", REQUESTS, timeout=30)
    by_worker = prometheus.query(f"sum by (instance) ({counted})")
    assert len(by_worker) == 2, f"one worker served everything: {by_worker}"
