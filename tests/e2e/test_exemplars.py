"""From a slow bucket to its trace, end to end: the API with traces on (every request sampled),
the collector and Jaeger, Prometheus with exemplar storage, in pull mode (Prometheus scrapes the
API's /metrics as OpenMetrics) and in push mode (OTLP to the collector, whose page Prometheus
scrapes as OpenMetrics), on Prometheus 2.53 and 3.5, and in pull mode with two workers (one
scrape serves the merge of both workers' exemplars). Every trace id that
`/api/v1/query_exemplars` returns for the HTTP and LLM latency histograms (and the HTTP request
counter) is a trace in Jaeger, and its span is the request it was counted for: the server span
of the series' method and route (and status, for the counter), the LLM attempt of the
series' provider."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack import Stack, StackConfig
from tests.e2e.helpers import (
    SESSIONS,
    Jaeger,
    Span,
    api_client,
    create_sessions,
    llm_env,
    tags,
    wait_sessions,
)
from tests.support.fake_llm import FakeLLM
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

HTTP_BUCKETS = "testboost_http_request_duration_seconds_bucket"
HTTP_REQUESTS = "testboost_http_requests_total"
LLM_BUCKETS = "testboost_llm_request_duration_seconds_bucket"
SESSION = f"{SESSIONS}/{{session_id}}"
# (method, path, status) the workload answers; each must have its exemplar.
ANSWERED = {("POST", SESSIONS, "201"), ("GET", SESSION, "200"), ("GET", SESSION, "404")}

Found = list[tuple[dict[str, str], dict[str, Any]]]  # (series labels, exemplar)


@pytest.fixture(
    scope="module",
    params=[
        ("pull", "prometheus", 1),
        ("push", "prometheus", 1),
        ("pull", "prometheus3", 1),
        ("push", "prometheus3", 1),
        ("pull", "prometheus", 2),
    ],
    ids=lambda p: (
        f"{p[0]}-{'3.5' if p[1] == 'prometheus3' else '2.53'}"
        + (f"-{p[2]}-workers" if p[2] > 1 else "")
    ),
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake: FakeLLM
) -> Iterator[Stack]:
    mode, binary, workers = request.param
    config = StackConfig(
        workdir=tmp_path_factory.mktemp("stack"),
        mode=mode,
        traces=True,
        fast=True,
        prometheus_binary=binary,
        workers=workers,
        api_env=llm_env(fake),
    )
    stack = Stack(config)
    stack.up(timeout=60)
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def workload(stack: Stack) -> float:
    """Sessions created (POST 201), read to completion (GET 200, their workflows' LLM calls),
    and a missing one (GET 404); the time it started."""
    started = time.time()
    with api_client(stack) as api:
        ids = create_sessions(api, 3)
        wait_sessions(api, ids, ("completed",))
        missing = api.get(f"{SESSIONS}/00000000-0000-4000-8000-000000000000")
        assert missing.status_code == 404
    return started


def query_exemplars(stack: Stack, metric: str, since: float) -> Found:
    response = httpx.get(
        f"{stack.urls['prometheus']}/api/v1/query_exemplars",
        params={"query": metric, "start": f"{since - 60:.3f}", "end": f"{time.time() + 60:.3f}"},
        timeout=10,
    )
    body = response.json()
    assert body["status"] == "success", body
    return [
        (series["seriesLabels"], exemplar)
        for series in body["data"] or []
        for exemplar in series["exemplars"]
    ]


def wait_exemplars(stack: Stack, metric: str, since: float, wanted: set[tuple[str, ...]]) -> Found:
    """The exemplars of `metric` once every label tuple in `wanted` has one (the labels named
    by `key`)."""

    def complete() -> Found:
        found = query_exemplars(stack, metric, since)
        return found if wanted <= {key(metric, labels) for labels, _ in found} else []

    return until(complete, timeout=45, interval=0.5, message=f"exemplars of {metric}: {wanted}")


def key(metric: str, labels: dict[str, str]) -> tuple[str, ...]:
    if metric == LLM_BUCKETS:
        return (labels["provider"],)
    if metric == HTTP_REQUESTS:
        return (labels["method"], labels["path"], labels["status"])
    return (labels["method"], labels["path"])


def span_of(jaeger: Jaeger, exemplar: dict[str, Any]) -> Span:
    """The span an exemplar names, in the trace it names (waiting for Jaeger to have it)."""
    trace_id, span_id = exemplar["labels"]["trace_id"], exemplar["labels"]["span_id"]
    assert len(trace_id) == 32 and len(span_id) == 16, exemplar

    def found() -> Span | None:
        return next((s for s in jaeger.trace(trace_id) if s["spanID"] == span_id), None)

    span: Span = until(found, timeout=30, interval=0.5, message=f"span {span_id} of {trace_id}")
    return span


def test_http_latency_exemplars_are_the_requests_server_spans(
    stack: Stack, workload: float, jaeger: Jaeger
) -> None:
    wanted = {(method, path) for method, path, _status in ANSWERED}
    found = wait_exemplars(stack, HTTP_BUCKETS, workload, wanted)
    for labels, exemplar in found:
        span = span_of(jaeger, exemplar)
        span_tags = tags(span)
        assert span_tags["span.kind"] == "server", span
        assert span_tags["http.request.method"] == labels["method"], (labels, span_tags)
        assert span_tags["http.route"] == labels["path"], (labels, span_tags)
        # In its bucket: above the bucket below (not checked), at most its bound.
        assert float(exemplar["value"]) <= float(labels["le"]) or math.isinf(float(labels["le"])), (
            labels,
            exemplar,
        )
        # The value is the request's duration, which its span encloses (Jaeger: µs).
        assert float(exemplar["value"]) <= span["duration"] / 1e6 + 0.001, (exemplar, span)


def test_http_request_counter_exemplars_carry_the_status(
    stack: Stack, workload: float, jaeger: Jaeger
) -> None:
    found = wait_exemplars(stack, HTTP_REQUESTS, workload, ANSWERED)
    for labels, exemplar in found:
        span_tags = tags(span_of(jaeger, exemplar))
        assert span_tags["span.kind"] == "server"
        assert (
            span_tags["http.request.method"],
            span_tags["http.route"],
            str(span_tags["http.response.status_code"]),
        ) == (labels["method"], labels["path"], labels["status"])


def test_llm_latency_exemplars_are_the_attempts_spans(
    stack: Stack, workload: float, jaeger: Jaeger
) -> None:
    found = wait_exemplars(stack, LLM_BUCKETS, workload, {("openai",)})
    for labels, exemplar in found:
        span = span_of(jaeger, exemplar)
        assert span["operationName"] == "llm.chat", span
        assert tags(span)["gen_ai.system"] == labels["provider"]
