"""Traces end to end: API → OTLP → our OpenTelemetry Collector → Jaeger, read back through
Jaeger's query API. A request sent with a `traceparent` is one trace: its server span, the SQL
it ran, and the workflow it started (in a background thread) with that workflow's SQL and LLM
calls, all descendants of the server span, whose parent is the caller's span. The number of
LLM spans is the number of requests the fake provider received; the request's log lines carry
its trace id. The sampling decision is the caller's, and a workflow resumed after a restart
has no request to belong to: it is a trace of its own. And nothing else starts a trace: after
the module's workload and several turns of the background loops (lease renewals, sweeps),
every trace in Jaeger starts at a request's server span or at such a workflow, never at a
lone SQL statement, a scrape of /metrics, a health probe or the docs pages."""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter

import httpx
import pytest

from devstack import Stack
from tests.e2e.conftest import StackFactory
from tests.e2e.helpers import (
    SESSIONS,
    Jaeger,
    Span,
    api_client,
    llm_env,
    tags,
    wait_sessions,
)
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

SERVER_SPAN = f"POST {SESSIONS}"
STEPS = 4  # impact_analysis: collect_changes, map_dependencies, select_tests, report
LOG_CONTEXT = re.compile(r"\[trace=([0-9a-f]{32}|-) span=([0-9a-f]{16}|-)\]")
UNTRACED = ("/metrics", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
# Short, so that the lease keeper renews (every third) and sweeps (every period) many times
# during the module.
LEASE_TTL_S = 2


def traceparent(sampled: bool = True) -> tuple[str, str, str]:
    """A caller's W3C trace context: (header, trace id, span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


def named(spans: list[Span], name: str) -> list[Span]:
    return [span for span in spans if span["operationName"] == name]


def parent_of(span: Span) -> str | None:
    """The span's parent id (OpenTelemetry has one parent: Jaeger's single CHILD_OF)."""
    parents = [ref for ref in span["references"] if ref["refType"] == "CHILD_OF"]
    assert len(parents) <= 1, span
    if not parents:
        return None
    assert parents[0]["traceID"] == span["traceID"], span
    return str(parents[0]["spanID"])


def roots(spans: list[Span]) -> list[Span]:
    """The trace's spans that started in the API without a parent of its own: no parent, or
    the caller's (not in the trace)."""
    ids = {span["spanID"] for span in spans}
    return [span for span in spans if parent_of(span) not in ids]


def sql(spans: list[Span]) -> list[Span]:
    return [span for span in spans if tags(span).get("db.system.name") == "sqlite"]


def llm_requests(fake: FakeLLM, project: str) -> int:
    """Requests the fake provider received for the session of `project` (in its prompt)."""
    with fake.lock:
        return sum(
            any(f"Project: {project}" in m["content"] for m in r["body"].get("messages", []))
            for r in fake.requests
        )


def create_session(api: httpx.Client, project: str, header: str) -> str:
    body = {"session_type": "impact_analysis", "project_path": project}
    created = api.post(SESSIONS, json=body, headers={"traceparent": header})
    assert created.status_code == 201, created.text
    session_id: str = created.json()["id"]
    return session_id


def logged(stack: Stack, trace_id: str) -> list[tuple[str, str]]:
    """(span id, line) of every API log line carrying `trace_id`."""
    found = []
    for line in stack.log("api").read_text(errors="replace").splitlines():
        context = LOG_CONTEXT.search(line)
        if context and context.group(1) == trace_id:
            found.append((context.group(2), line))
    return found


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory, fake: FakeLLM) -> Stack:
    env = {**llm_env(fake), "TESTBOOST_WORKFLOW_LEASE_TTL": str(LEASE_TTL_S)}
    return make_stack(mode="push", traces=True, api_env=env)


def test_a_request_with_a_traceparent_is_one_trace_down_to_its_llm_calls(
    stack: Stack, fake: FakeLLM, jaeger: Jaeger
) -> None:
    header, trace_id, caller_span = traceparent()
    project = f"/traces/{trace_id}"
    # One attempt rate-limited, then retried at once: one LLM span per attempt.
    fake.then(Reply(status=429, headers={"retry-after": "0"}))
    with api_client(stack) as api:
        session_id = create_session(api, project, header)
        wait_sessions(api, [session_id], ("completed",))
    requests = llm_requests(fake, project)
    assert requests == STEPS + 1

    def whole() -> list[Span]:
        spans = jaeger.trace(trace_id)
        done = named(spans, SERVER_SPAN) and named(spans, "workflow.run")
        return spans if done and len(named(spans, "llm.chat")) == requests else []

    spans = until(whole, timeout=30, interval=0.5, message=f"trace {trace_id} in Jaeger")
    by_id = {span["spanID"]: span for span in spans}
    assert len(by_id) == len(spans), "span ids are unique"
    assert {span["traceID"] for span in spans} == {trace_id}

    # The server span, child of the caller's span (which is not in the trace).
    (server,) = named(spans, SERVER_SPAN)
    assert parent_of(server) == caller_span
    assert tags(server)["span.kind"] == "server"
    assert tags(server)["http.response.status_code"] == 201
    server_id = server["spanID"]

    # Every other span has its parent in the trace, and descends from the server span.
    for span in spans:
        if span is server:
            continue
        ancestor = parent_of(span)
        assert ancestor in by_id, (span["operationName"], ancestor)
        while ancestor != server_id:
            assert ancestor in by_id, span["operationName"]
            ancestor = parent_of(by_id[ancestor])

    # The workflow, once, started by the request though it ran in the background.
    (workflow,) = named(spans, "workflow.run")
    assert parent_of(workflow) == server_id
    assert tags(workflow)["testboost.session.id"] == session_id
    workflow_id = workflow["spanID"]

    # One LLM span per request the provider received, each an attempt of the workflow.
    llm = named(spans, "llm.chat")
    assert {parent_of(span) for span in llm} == {workflow_id}
    assert Counter(tags(span)["testboost.llm.outcome"] for span in llm) == {
        "success": STEPS,
        "rate_limit": 1,
    }

    # SQL: the request's INSERTs under the server span, the workflow's reads and writes
    # under the workflow span (SQL is traced only under sampled parents).
    statements = {span["spanID"]: tags(span)["db.query.text"] for span in sql(spans)}
    request_sql = [by_id[i] for i in statements if parent_of(by_id[i]) == server_id]
    workflow_sql = [by_id[i] for i in statements if parent_of(by_id[i]) == workflow_id]
    assert len(request_sql) + len(workflow_sql) == len(statements)
    assert any(tags(s)["db.query.text"].startswith("INSERT INTO sessions") for s in request_sql)
    assert "INSERT sessions" in {s["operationName"] for s in request_sql}  # db conventions
    assert any(tags(s)["db.query.text"].startswith("UPDATE steps") for s in workflow_sql)
    assert any(tags(s)["db.query.text"].startswith("SELECT") for s in workflow_sql)
    assert set(by_id) == {server_id, workflow_id} | {s["spanID"] for s in llm} | set(statements)

    # The request's log lines carry its trace id and the span they were written in: the
    # access line the server span's, each LLM call's HTTP line its attempt's span.
    lines = logged(stack, trace_id)
    assert {span_id for span_id, _line in lines} <= set(by_id)
    access = [s for s, line in lines if f'"POST {SESSIONS} HTTP/1.1" 201' in line]
    assert access == [server_id]
    calls = [s for s, line in lines if "HTTP Request: POST" in line and "/chat/completions" in line]
    assert sorted(calls) == sorted(span["spanID"] for span in llm)
    assert any("LLM attempt 1/" in line and s == workflow_id for s, line in lines)


def test_an_unsampled_request_leaves_its_workflow_unsampled_too(
    stack: Stack, fake: FakeLLM, jaeger: Jaeger
) -> None:
    """The caller decides (parentbased sampler): the workflow follows the request that
    started it, rather than starting a sampled trace of its own."""
    header, trace_id, _ = traceparent(sampled=False)
    with api_client(stack) as api:
        session_id = create_session(api, f"/traces/{trace_id}", header)
        wait_sessions(api, [session_id], ("completed",))
        # A sampled request after it: once its span is in Jaeger, everything the API ended
        # before it has been exported (one batch queue, in order).
        marker, marker_id, _ = traceparent()
        assert api.get(f"{SESSIONS}/{session_id}", headers={"traceparent": marker}).is_success
    until(lambda: jaeger.trace(marker_id), timeout=30, interval=0.5, message="the marker trace")
    assert jaeger.trace(trace_id) == []
    assert jaeger.traces_of_session(session_id) == {}


def test_a_workflow_resumed_after_a_restart_is_a_trace_of_its_own(
    stack: Stack, fake: FakeLLM, jaeger: Jaeger
) -> None:
    """Restarted, the API resumes the session at its second step with no request context:
    the rest of the workflow is a new root trace, and no LLM call is missing or doubled."""
    header, trace_id, _ = traceparent()
    project = f"/traces/{trace_id}"
    fake.then(Reply(delay=2.0))  # the first step is still running when SIGTERM comes
    with api_client(stack) as api:
        session_id = create_session(api, project, header)
        until(lambda: llm_requests(fake, project) == 1, timeout=10, message="the first step")
    stack.stop("api")  # waits for the running step, flushes the spans
    stack.start("api")
    with api_client(stack) as api:
        wait_sessions(api, [session_id], ("completed",))
    assert llm_requests(fake, project) == STEPS

    def both() -> dict[str, list[Span]]:
        traces = jaeger.traces_of_session(session_id)
        llm = sum(len(named(spans, "llm.chat")) for spans in traces.values())
        return traces if len(traces) == 2 and llm == STEPS else {}

    traces = until(both, timeout=30, interval=0.5, message="both traces of the session")
    assert trace_id in traces, "the request's trace holds the workflow it started"
    first = traces.pop(trace_id)
    ((resumed_id, resumed),) = traces.items()
    (server,) = named(first, SERVER_SPAN)
    (workflow,) = named(first, "workflow.run")
    assert parent_of(workflow) == server["spanID"]
    assert len(named(first, "llm.chat")) == 1
    (root,) = named(resumed, "workflow.run")
    assert parent_of(root) is None and root["references"] == []
    assert named(resumed, SERVER_SPAN) == []
    assert len(named(resumed, "llm.chat")) == STEPS - 1
    assert {parent_of(span) for span in named(resumed, "llm.chat")} == {root["spanID"]}
    assert sql(resumed), "SQL spans under the resumed workflow"
    assert {span["traceID"] for span in resumed} == {resumed_id}


def test_every_trace_starts_at_a_request_or_a_workflow(
    stack: Stack, fake: FakeLLM, jaeger: Jaeger
) -> None:
    """After the module's workload (and this test's: a session, the untraced pages, the
    loops left to tick): one root per trace, a request's server span or a workflow no request
    started; no SQL, scrape, probe or docs page at the root or anywhere."""
    header, trace_id, _ = traceparent()
    with api_client(stack) as api:
        session_id = create_session(api, f"/traces/{trace_id}", header)
        for path in UNTRACED:
            assert api.get(path).status_code == 200, path
        wait_sessions(api, [session_id], ("completed",))
        time.sleep(3 * LEASE_TTL_S)  # renewals and sweeps, idle
        # Once this sampled request is in Jaeger, everything the API ended before it is too
        # (one batch queue, in order).
        marker, marker_id, _ = traceparent()
        assert api.get(f"{SESSIONS}/{session_id}", headers={"traceparent": marker}).is_success
    until(lambda: jaeger.trace(marker_id), timeout=30, interval=0.5, message="the marker trace")

    traces = jaeger.every_trace()
    assert trace_id in traces and marker_id in traces
    kinds: Counter[str] = Counter()
    for spans in traces.values():
        (root,) = roots(spans)  # one root per trace
        root_tags = tags(root)
        if root["operationName"] == "workflow.run":
            assert root["references"] == [], "a workflow without a request is a trace of its own"
            kinds["workflow.run"] += 1
        else:
            assert root_tags["span.kind"] == "server", (root["operationName"], root_tags)
            kinds["request"] += 1
        for span in spans:
            assert tags(span).get("url.path") not in UNTRACED, span["operationName"]
    assert kinds["request"] >= 5, kinds
    # The resumed-after-restart test's workflow (when it ran before this one) at most.
    assert kinds["workflow.run"] <= 1, kinds
