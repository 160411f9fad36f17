"""What the end-to-end tests share: a Prometheus client that waits for an answer, the API
client, and the workload that gives every dashboard query something to show."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.workflows.definitions import SessionType
from devstack import Stack
from telemetry.catalog import CATALOG, Kind, MetricFamily
from tests.monitoring.queries import alert_rules
from tests.monitoring.tools import REPO
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.waiting import until

Series = list[dict[str, Any]]
SESSIONS = "/api/v2/sessions"
FINAL = ("completed", "failed", "cancelled")
# Labels that are not data-point attributes: the scrape's target labels (in push mode the
# collector's, from the API's resource: job = service.name, instance = service.instance.id).
# The dashboards and alerts aggregate them away with sum/max.
TARGET_LABELS = {"__name__", "job", "instance"}


class Prometheus:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> Series:
        body = self.http.get("/api/v1/query", params={"query": expr}).json()
        assert body["status"] == "success", (expr, body)
        result: Series = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of `expr`, None when it returns nothing."""
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def wait(
        self,
        expr: str,
        check: Callable[[Series], bool] = bool,
        timeout: float = 20,
        message: str = "",
    ) -> Series:
        """Poll `expr` until `check(result)`; fail with the last result after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if check(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {message or expr}: last {result}"
                )
            time.sleep(0.25)

    def wait_value(self, expr: str, expected: float, timeout: float = 20) -> None:
        def equal(result: Series) -> bool:
            return len(result) == 1 and float(result[0]["value"][1]) == expected

        self.wait(expr, equal, timeout, f"{expr} == {expected}")

    def close(self) -> None:
        self.http.close()


def run_testboost(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`testboost ARGS` run in `cwd` from this checkout, with none of this shell's TESTBOOST_*
    or OTEL_* variables (they would reach the stack's API)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTBOOST_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def api_client(stack: Stack, *, key: bool = True) -> httpx.Client:
    headers = {"X-API-Key": stack.api_key} if key else {}
    return httpx.Client(base_url=stack.urls["api"], headers=headers, timeout=30)


def create_sessions(api: httpx.Client, count: int, mode: str = "autonomous") -> list[str]:
    types = list(SessionType)
    ids = []
    for index in range(count):
        body = {"session_type": types[index % len(types)].value, "project_path": "/p", "mode": mode}
        response = api.post(SESSIONS, json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def wait_sessions(api: httpx.Client, ids: Iterable[str], statuses: tuple[str, ...]) -> None:
    pending = set(ids)

    def settled() -> bool:
        for session_id in list(pending):
            if api.get(f"{SESSIONS}/{session_id}").json()["status"] in statuses:
                pending.discard(session_id)
        return not pending

    until(settled, timeout=60, message=f"sessions in {statuses}")


def cancel_sessions(api: httpx.Client, ids: Iterable[str]) -> None:
    for session_id in ids:
        assert api.post(f"{SESSIONS}/{session_id}/cancel").status_code == 200


def concurrently(calls: list[Callable[[], Any]], workers: int) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


# --- the workload -----------------------------------------------------------------------------

# Retries are immediate and long enough that no step fails: every run of the workload ends
# with the same series (only `completed` workflows), so pull and push can be compared.
LLM_ENV = {"TESTBOOST_LLM_MAX_ATTEMPTS": "10", "TESTBOOST_LLM_MAX_RETRY_WAIT": "0"}
LLM_LATENCY_S = 0.05
WAVES = 2
SESSIONS_PER_WAVE = 2 * len(SessionType)  # every session type, twice
RATE_LIMITS_PER_WAVE = 6  # 12 in all: LLMRateLimitHit's threshold is "more than 10"
SERVER_ERRORS_PER_WAVE = 3
REJECTED_PER_WAVE = {401: 3, 404: 4, 422: 2}


def fake_llm(host: str = "127.0.0.1") -> FakeLLM:
    return FakeLLM(default=Reply(delay=LLM_LATENCY_S), host=host)


def llm_env(fake: FakeLLM) -> dict[str, str]:
    return {"TESTBOOST_LLM_BASE_URL": fake.base_url, **LLM_ENV}


@dataclass
class Workload:
    """What the workload did, to compare with what Prometheus counted."""

    sessions: int = 0
    rate_limits: int = 0
    errors: int = 0
    rejected: dict[int, int] = field(default_factory=dict)
    finished_at: float = 0.0  # when every count above was seen by Prometheus (epoch seconds)


def run_workload(
    stack: Stack, fake: FakeLLM, prometheus: Prometheus, timeout: float = 30
) -> Workload:
    """Sessions of every type with LLM rate limits and server errors, and HTTP 2xx, 401, 404
    and 422 answers, in two waves that Prometheus sees separately: a series' first sample
    is its baseline, so rate() and histogram_quantile() need a second, higher one.
    `timeout`: for each of Prometheus' views (longer at the committed 15 s intervals).
    `stack`: anything with the API's `urls["api"]` and `api_key` (a compose stack too)."""
    done = Workload()
    # The counters are primed at 0 at start-up: let Prometheus record that baseline first, or
    # increase() misses the first events. Prometheus' first scrape comes up to ~5 s after its
    # start (target updates are batched); in push mode the baseline arrives before it.
    prometheus.wait_value("sum(testboost_llm_calls_total)", 0, timeout=timeout)
    # Every replica answers (one, or several behind a load balancer).
    prometheus.wait_value('min(up{job="testboost-api"})', 1, timeout=timeout)
    calls_before = len(fake.requests)
    with api_client(stack) as api, api_client(stack, key=False) as anonymous:
        for _wave in range(WAVES):
            fake.then(
                *[Reply(status=429, headers={"retry-after": "0"})] * RATE_LIMITS_PER_WAVE,
                *[Reply(status=500, body={"error": "boom"})] * SERVER_ERRORS_PER_WAVE,
            )
            ids = create_sessions(api, SESSIONS_PER_WAVE)
            for _ in range(REJECTED_PER_WAVE[401]):
                assert anonymous.get(SESSIONS).status_code == 401
            for _ in range(REJECTED_PER_WAVE[404]):
                assert api.get(f"{SESSIONS}/no-such-session").status_code == 404
            for _ in range(REJECTED_PER_WAVE[422]):
                assert api.post(SESSIONS, json={"session_type": "nope"}).status_code == 422
            wait_sessions(api, ids, FINAL)
            done.sessions += len(ids)
            done.rate_limits += RATE_LIMITS_PER_WAVE
            done.errors += RATE_LIMITS_PER_WAVE + SERVER_ERRORS_PER_WAVE
            for status, count in REJECTED_PER_WAVE.items():
                done.rejected[status] = done.rejected.get(status, 0) + count
            # Seen by Prometheus before the next wave starts.
            prometheus.wait_value("sum(testboost_workflow_total)", done.sessions, timeout=timeout)
    # Every observation seen by Prometheus: series that first appeared in the run (a status
    # code, say) show their counts once their hold has passed (telemetry/series_start.py).
    calls = len(fake.requests) - calls_before
    prometheus.wait_value(
        "sum(testboost_llm_request_duration_seconds_count)", calls, timeout=timeout
    )
    prometheus.wait_value(
        "sum(testboost_workflow_duration_seconds_count)", done.sessions, timeout=timeout
    )
    for status, count in done.rejected.items():
        expr = f'sum(testboost_http_requests_total{{status="{status}"}})'
        prometheus.wait_value(expr, count, timeout=timeout)
    done.finished_at = time.time()
    return done


# --- checks shared by pull and push -----------------------------------------------------------


def data_point_labels(metric: dict[str, str], family: MetricFamily) -> set[str]:
    labels = {name for name in metric if name not in TARGET_LABELS}
    if family.kind is Kind.HISTOGRAM and metric["__name__"].endswith("_bucket"):
        labels.discard("le")
    return labels


def assert_catalog_families(prometheus: Prometheus) -> None:
    """Every catalog family is in Prometheus, each series with exactly the contract labels."""
    for family in CATALOG:
        names = "|".join(family.series_names)
        series = prometheus.query(f'{{__name__=~"{names}"}}')
        found = {s["metric"]["__name__"] for s in series}
        assert found == set(family.series_names), (family.name, found)
        for s in series:
            assert data_point_labels(s["metric"], family) == set(family.labels), (
                family.name,
                s["metric"],
            )


def expr_of(alert: str) -> str:
    """The expression of a shipped alert, as alerts.yml has it."""
    return str(next(rule["expr"] for rule in alert_rules() if rule["alert"] == alert))


def finite(series: Series) -> list[float]:
    values = [float(s["value"][1]) for s in series]
    return [v for v in values if math.isfinite(v)]


def without_fallback(expr: str) -> str:
    """The query without its `or on() vector(0)`: what is left must return real data."""
    return expr.replace(" or on() vector(0)", "")


# --- Jaeger -----------------------------------------------------------------------------------

Span = dict[str, Any]
SERVICE = "testboost-api"  # the API's service.name, as Jaeger knows it


class Jaeger:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def trace(self, trace_id: str) -> list[Span]:
        """The spans Jaeger holds for `trace_id` (none yet: [])."""
        response = self.http.get(f"/api/traces/{trace_id}")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        (trace,) = response.json()["data"]
        assert trace["traceID"] == trace_id
        services = {process["serviceName"] for process in trace["processes"].values()}
        assert services == {SERVICE}, services
        spans: list[Span] = trace["spans"]
        return spans

    def traces_of_session(self, session_id: str) -> dict[str, list[Span]]:
        """Every trace with a span tagged with this session id, by trace id."""
        params = {
            "service": SERVICE,
            "tags": json.dumps({"testboost.session.id": session_id}),
            "limit": "100",
        }
        response = self.http.get("/api/traces", params=params)
        response.raise_for_status()
        return {trace["traceID"]: trace["spans"] for trace in response.json()["data"] or []}

    def every_trace(self) -> dict[str, list[Span]]:
        """Every trace of the service Jaeger holds: this module's, its storage is in memory."""
        now = int(time.time() * 1_000_000)
        params = {
            "service": SERVICE,
            "start": str(now - 3600 * 1_000_000),
            "end": str(now + 60 * 1_000_000),
            "limit": "100000",
        }
        response = self.http.get("/api/traces", params=params)
        response.raise_for_status()
        return {trace["traceID"]: trace["spans"] for trace in response.json()["data"] or []}

    def close(self) -> None:
        self.http.close()


def tags(span: Span) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}
