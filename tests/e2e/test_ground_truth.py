"""Ground truth, end to end: with a real Prometheus already scraping, a known workload runs
(sessions of every type; LLM calls through a local OpenAI-compatible server with 429s and 500s;
HTTP 2xx, 4xx and 5xx answers), then `increase()` over the run of every counter and of every
histogram's `_count` must equal what the workload and the fake provider saw — first
observations included — and every quantile panel must return numbers.

In each topology operators run: pull with one worker, pull with `testboost serve --workers 4`
and with `uvicorn --workers 4` plus TESTBOOST_METRICS_DIR (one scrape target, as the guide
says), push through our OpenTelemetry Collector with 4
workers pushing at once (Prometheus scrapes the collector) and its remote-write alternative;
on Prometheus 2.53 and 3.5 (`make tools` installs both)."""

from __future__ import annotations

import math
import os
import signal
import socket
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.workflows.definitions import SessionType
from devstack import Stack
from tests.e2e.conftest import StackFactory
from tests.e2e.helpers import (
    FINAL,
    SESSIONS,
    Prometheus,
    api_client,
    concurrently,
    finite,
    llm_env,
    wait_sessions,
)
from tests.monitoring.queries import dashboard_queries
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

TOPOLOGIES = {
    "pull-1-worker": {"mode": "pull", "workers": 1},
    "pull-4-workers": {"mode": "pull", "workers": 4},
    # The documented way without `testboost serve`: uvicorn --workers, TESTBOOST_METRICS_DIR.
    "pull-uvicorn-4-workers": {"mode": "pull", "workers": 4, "server": "uvicorn"},
    "push-4-workers": {"mode": "push", "workers": 4},
    "push-remote-write-2-workers": {"mode": "push", "workers": 2, "push_via": "remote-write"},
}
PROMETHEUS = {"prometheus-2.53": "prometheus", "prometheus-3.5": "prometheus3"}
RATE_LIMITS, SERVER_ERRORS = 5, 3
# A 503 needs a pool that runs out: one connection per worker, given up on after 1 s.
POOL_ENV = {
    "TESTBOOST_DB_POOL_SIZE": "1",
    "TESTBOOST_DB_MAX_OVERFLOW": "0",
    "TESTBOOST_DB_POOL_TIMEOUT": "1",
}
ROUTE = "/api/v2/sessions/{session_id}"
PROVIDER = "fake-provider"


@dataclass
class Truth:
    """What was really done, by label set."""

    started: float = field(default_factory=time.time)
    http: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    workflows: Counter[tuple[str, str]] = field(default_factory=Counter)
    llm_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, response: httpx.Response) -> None:
        """httpx response hook: every answer the workload gets, by route template."""
        path = response.request.url.path
        route = SESSIONS if path == SESSIONS else ROUTE
        assert path.startswith(SESSIONS) and path.count("/") <= 4, path
        with self.lock:  # concurrent requests answer on several threads
            self.http[(response.request.method, route, str(response.status_code))] += 1

    def client(self, stack: Stack, *, key: bool = True) -> httpx.Client:
        client = api_client(stack, key=key)
        client.event_hooks["response"].append(self.count)
        return client


@pytest.fixture(params=list(PROMETHEUS), scope="module")
def prometheus_binary(request: pytest.FixtureRequest) -> str:
    return PROMETHEUS[request.param]


@pytest.fixture(params=list(TOPOLOGIES), scope="module")
def run(
    request: pytest.FixtureRequest,
    prometheus_binary: str,
    make_stack: StackFactory,
    prometheus_of: Any,
    fake: FakeLLM,
) -> tuple[Stack, Prometheus, Truth]:
    stack = make_stack(
        **TOPOLOGIES[request.param],
        prometheus_binary=prometheus_binary,
        api_env={**llm_env(fake), **POOL_ENV, "TESTBOOST_LLM_PROVIDER": PROVIDER},
    )
    prometheus: Prometheus = prometheus_of(stack)
    truth = workload(stack, fake, prometheus)
    return stack, prometheus, truth


def workload(stack: Stack, fake: FakeLLM, prometheus: Prometheus) -> Truth:
    truth = Truth(started=time.time())
    seen_before = len(fake.requests)
    # Prometheus is already scraping (the stack waits for it) when the first event happens.
    prometheus.wait_value('up{job="testboost-api"}', 1, timeout=30)
    fake.then(
        *[Reply(status=429, headers={"retry-after": "0"})] * RATE_LIMITS,
        *[Reply(status=500, body={"error": "boom"})] * SERVER_ERRORS,
    )
    ids: list[str] = []
    with truth.client(stack) as api, truth.client(stack, key=False) as anonymous:
        for session_type in SessionType:
            body = {"session_type": session_type.value, "project_path": "/p"}
            created = api.post(SESSIONS, json=body)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        assert anonymous.get(SESSIONS).status_code == 401
        assert api.get(f"{SESSIONS}/no-such-session").status_code == 404
        assert api.post(SESSIONS, json={"session_type": "x"}).status_code == 422
        ids += _answers_503(stack, api, truth)
        assert api.get(SESSIONS).status_code == 200
        wait_sessions(api, ids, FINAL)
        for session_id in ids:
            session = api.get(f"{SESSIONS}/{session_id}").json()
            truth.workflows[(session["session_type"], session["status"])] += 1
    assert not fake.script, "every scripted 429 and 500 was served"
    truth.llm_calls = len(fake.requests) - seen_before
    assert set(truth.http) >= {("POST", SESSIONS, "503"), ("GET", SESSIONS, "401")}
    return truth


def _answers_503(stack: Stack, api: httpx.Client, truth: Truth) -> list[str]:
    """Another client holds SQLite's write lock: in each worker one creation waits for it
    with the worker's only pooled connection, the next gives up on the pool (503). Twice as
    many concurrent creations as workers: some worker gets two."""
    lock = sqlite3.connect(stack.database_url.removeprefix("sqlite:///"), isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        body = {"session_type": SessionType.IMPACT_ANALYSIS.value, "project_path": "/locked"}

        def create() -> httpx.Response:
            return api.post(SESSIONS, json=body)

        runner_results: list[httpx.Response] = []
        runner = threading.Thread(
            target=lambda: runner_results.extend(
                concurrently([create] * (2 * stack.config.workers), 2 * stack.config.workers)
            )
        )
        runner.start()
        until(lambda: truth.http[("POST", SESSIONS, "503")] > 0, timeout=20, message="a 503")
    finally:
        lock.rollback()
        lock.close()
    runner.join(timeout=60)
    return [r.json()["id"] for r in runner_results if r.status_code == 201]


# --- what Prometheus shows --------------------------------------------------------------------


Bounds = dict[tuple[str, ...], tuple[float, float]]


def increases(prometheus: Prometheus, expr: str, by: str, truth: Truth) -> Bounds:
    """`increase(expr[run])` at the end of the run, summed by the labels in `by`, as the range
    the true count must lie in: Prometheus extrapolates each series' increase from its last
    sample to the end of the window, by at most 1.1 sample intervals (its rule), so the true
    increase of a series of n samples lies in [shown / (1 + 1.1 / (n - 1)), shown]."""
    window = math.ceil(time.time() - truth.started + 30)
    labels = [label.strip() for label in by.split(",")]
    shown = prometheus.query(f"increase({expr}[{window}s])")
    samples = {
        _identity(s["metric"]): int(s["value"][1])
        for s in prometheus.query(f"count_over_time({expr}[{window}s])")
    }
    bounds: Bounds = {}
    for series in shown:
        value, n = float(series["value"][1]), samples[_identity(series["metric"])]
        low = value / (1 + 1.1 / (n - 1)) if n > 1 else value
        key = tuple(series["metric"].get(label, "") for label in labels)
        old_low, old_high = bounds.get(key, (0.0, 0.0))
        bounds[key] = (old_low + low, old_high + value)
    return bounds


def _identity(metric: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in metric.items() if k != "__name__"))


def assert_counts(shown: Bounds, expected: Counter[Any], what: str) -> None:
    wanted = {(k if isinstance(k, tuple) else (k,)): v for k, v in expected.items()}
    for key, count in wanted.items():
        low, high = shown.get(key, (0.0, 0.0))
        assert low - 1e-6 <= count <= high + 1e-6, (
            what,
            key,
            f"shown {low:.3f}..{high:.3f}",
            count,
        )
    extra = {k: v for k, v in shown.items() if k not in wanted and v[1] > 0}
    assert not extra, (what, "counted but never done", extra)


def settle(prometheus: Prometheus, truth: Truth) -> None:
    """Wait until Prometheus holds the last counts (the hold and the agents' intervals)."""
    total = sum(truth.workflows.values())
    prometheus.wait_value("sum(testboost_workflow_total)", total, timeout=30)
    prometheus.wait_value("sum(testboost_llm_calls_total)", truth.llm_calls, timeout=30)
    requests = sum(v for (_m, p, _s), v in truth.http.items() if p.startswith(SESSIONS))
    prometheus.wait(
        f'sum(testboost_http_requests_total{{path=~"{SESSIONS}.*"}}) >= {requests}',
        timeout=30,
    )
    time.sleep(2)  # one more sample of every series after the last change


def test_every_counter_and_histogram_counts_what_was_done(
    run: tuple[Stack, Prometheus, Truth],
) -> None:
    _stack, prometheus, truth = run
    settle(prometheus, truth)

    workflows = increases(prometheus, "testboost_workflow_total", "workflow_type, status", truth)
    assert_counts(workflows, truth.workflows, "testboost_workflow_total")
    durations = increases(
        prometheus, "testboost_workflow_duration_seconds_count", "workflow_type", truth
    )
    by_type: Counter[str] = Counter()
    for (workflow_type, _status), count in truth.workflows.items():
        by_type[workflow_type] += count
    assert_counts(durations, by_type, "testboost_workflow_duration_seconds_count")

    provider = Counter({PROVIDER: truth.llm_calls})
    assert_counts(
        increases(prometheus, "testboost_llm_calls_total", "provider", truth), provider, "llm calls"
    )
    assert_counts(
        increases(prometheus, "testboost_llm_request_duration_seconds_count", "provider", truth),
        provider,
        "llm latency count",
    )
    errors = increases(prometheus, "testboost_llm_errors_total", "error_type", truth)
    assert_counts(
        errors,
        Counter({"rate_limit": RATE_LIMITS, "server_error": SERVER_ERRORS}),
        "testboost_llm_errors_total",
    )
    assert_counts(
        increases(prometheus, "testboost_llm_rate_limit_total", "provider", truth),
        Counter({PROVIDER: RATE_LIMITS}),
        "testboost_llm_rate_limit_total",
    )

    ours = f'{{path=~"{SESSIONS}.*"}}'
    requests = increases(
        prometheus, f"testboost_http_requests_total{ours}", "method, path, status", truth
    )
    assert_counts(requests, truth.http, "testboost_http_requests_total")
    by_route: Counter[tuple[str, str]] = Counter()
    for (method, path, _status), count in truth.http.items():
        by_route[(method, path)] += count
    assert_counts(
        increases(
            prometheus,
            f"testboost_http_request_duration_seconds_count{ours}",
            "method, path",
            truth,
        ),
        by_route,
        "testboost_http_request_duration_seconds_count",
    )


def test_quantile_panels_return_numbers(run: tuple[Stack, Prometheus, Truth]) -> None:
    _stack, prometheus, truth = run
    settle(prometheus, truth)
    for dashboard, panel, expr in dashboard_queries():
        if "histogram_quantile" in expr:
            assert finite(prometheus.query(expr)), f"{dashboard} / {panel}: {expr}"


@pytest.mark.parametrize("run", ["pull-4-workers", "pull-uvicorn-4-workers"], indirect=True)
def test_a_killed_worker_loses_no_count_and_no_counter_goes_down(
    run: tuple[Stack, Prometheus, Truth],
) -> None:
    """`kill -9` of a pull-mode worker once it has published: the server replaces it, and
    whichever worker answers the next scrapes, the sums stay where they were."""
    stack, prometheus, truth = run
    settle(prometheus, truth)
    before = prometheus.value("sum(testboost_llm_calls_total)")
    assert before == truth.llm_calls
    victim = _workers(stack)[0]
    os.kill(victim, signal.SIGKILL)
    until(
        lambda: victim not in _workers(stack) and len(_workers(stack)) == stack.config.workers,
        timeout=60,
        message="the killed worker replaced",
    )
    first = prometheus.value('timestamp(up{job="testboost-api"})') or 0
    prometheus.wait(f'timestamp(up{{job="testboost-api"}}) > {first + 3}', timeout=30)
    assert prometheus.value("sum(testboost_llm_calls_total)") == before
    window = math.ceil(time.time() - truth.started + 30)
    assert prometheus.value(f"sum(resets(testboost_llm_calls_total[{window}s]))") == 0


def _workers(stack: Stack) -> list[int]:
    """The server's worker processes (multiprocessing's spawn children of the leader)."""
    leader = stack.processes["api"].pid
    children = Path(f"/proc/{leader}/task/{leader}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in _cmdline(int(pid))]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_series_carry_the_apis_job_and_the_instance_the_docs_promise(
    run: tuple[Stack, Prometheus, Truth],
) -> None:
    """docs/architecture.md: pull series carry the scrape target's job and instance (its
    address, one per replica); push series (scraped from the collector, or remote-written)
    the job and instance the collector sets from the API's resource: job="testboost-api",
    instance = the process' service.instance.id, one per worker. No other resource attribute
    is a label."""
    stack, prometheus, _truth = run
    series = prometheus.query('{__name__=~"testboost_.+"}')
    assert series
    assert {s["metric"]["job"] for s in series} == {"testboost-api"}
    instances = {s["metric"]["instance"] for s in series}
    target = httpx.URL(stack.urls["api"]).netloc.decode()
    if stack.config.mode == "pull":
        assert instances == {target}
    else:
        assert target not in instances
        assert len(instances) == stack.config.workers, instances  # one per pushing process
        # <host>:<port>/<slot> (telemetry/instance.py, `testboost serve`): the workers' slots
        # 0..N-1, stable across restarts, whatever other server runs on this host.
        base = f"{socket.gethostname()}:{httpx.URL(stack.urls['api']).port}"
        assert instances == {f"{base}/{n}" for n in range(stack.config.workers)}
    resource_labels = {
        name
        for s in series
        for name in s["metric"]
        if name.startswith(("service_", "process_", "telemetry_sdk_", "host_"))
    }
    assert resource_labels == set()
