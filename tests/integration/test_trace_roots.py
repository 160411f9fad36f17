"""Every trace is worth opening: one root span per traced API request, and one per workflow
that no request started (resumed at start-up); nothing from the background loops, nothing for
scrapes, health probes or the docs pages; every other span inside one of those traces.

In process: the app as `create_app` builds it, its spans in memory (the exporter swapped in
where telemetry/tracing.py makes the OTLP one), a real OpenAI-compatible fake behind the
workflows, and a lease period short enough for the lease keeper to renew and sweep many times
during the workload."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session as DbSession
from starlette.testclient import TestClient

import telemetry.tracing
from app.models import Session, SessionStatus
from app.workflows.definitions import Mode, SessionType
from app.workflows.engine import new_steps
from telemetry import TelemetryConfig
from tests.conftest import AppFactory
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.waiting import session_in

SESSIONS = "/api/v2/sessions"
UNTRACED = ["/metrics", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"]
ASSET = "/static-offline-docs/swagger-ui.css"  # what /docs loads
LEASE_TTL = 1.0  # the smallest the settings allow: renewals every 1/3 s, sweeps every second
ID = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?=/|$)")
CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    monkeypatch.setattr(telemetry.tracing, "span_exporter", lambda _config: memory)
    for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"):
        monkeypatch.delenv(name, raising=False)  # the default: parent-based, always on
    return memory


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    # Slow enough that each workflow spans several lease renewals.
    with FakeLLM(default=Reply(delay=0.15)) as server:
        yield server


class Sent:
    """The requests a client sent, as (method, path with ids replaced by the route's name)."""

    def __init__(self, client: TestClient) -> None:
        self.requests: list[tuple[str, str]] = []
        client.event_hooks["request"].append(self.record)

    def record(self, request: httpx.Request) -> None:
        path = ID.sub("/{session_id}", request.url.path)
        self.requests.append((request.method, path))


def keeper_statements(engine: Any) -> list[str]:
    """The statements the lease keeper thread runs on `engine` (none of them traced)."""
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def before(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if threading.current_thread().name == "workflow-leases":
            seen.append(statement)

    return seen


def left_unfinished(database_url: str) -> str:
    """A session a stopped API left pending, with nobody's lease: the next start resumes it."""
    engine = create_engine(database_url)
    try:
        with DbSession(engine) as db, db.begin():
            session = Session(
                session_type=SessionType.IMPACT_ANALYSIS.value,
                project_path="/left-over",
                mode=Mode.AUTONOMOUS.value,
                status=SessionStatus.PENDING.value,
                steps=new_steps(SessionType.IMPACT_ANALYSIS),
            )
            db.add(session)
            db.flush()
            return session.id
    finally:
        engine.dispose()


def is_root(span: ReadableSpan) -> bool:
    """A root in this process: no parent, or a caller's (remote) one."""
    return span.parent is None or span.parent.is_remote


def test_one_root_span_per_traced_request_and_none_from_background_loops(
    make_client: AppFactory, database_url: str, exporter: InMemorySpanExporter, fake: FakeLLM
) -> None:
    # Migrations first (their SQL runs outside any span too), then a session left behind.
    make_client().__exit__(None, None, None)
    left_over = left_unfinished(database_url)

    client = make_client(
        telemetry=TelemetryConfig(traces_exporter="otlp", new_series_hold_ms=0),
        llm_base_url=fake.base_url,
        workflow_lease_ttl=LEASE_TTL,
    )
    app: Any = client.app
    keeper = keeper_statements(app.state.engine)
    sent = Sent(client)

    # The workload: sessions created (one by a caller with its own trace), an interactive one
    # paused after its first step and resumed, every read, scrapes, probes, the docs pages.
    body = {"session_type": "impact_analysis", "project_path": "/repo"}
    created = [client.post(SESSIONS, json=body).json()["id"] for _ in range(3)]
    created.append(client.post(SESSIONS, json=body, headers={"traceparent": CALLER}).json()["id"])
    interactive = client.post(SESSIONS, json={**body, "mode": "interactive"}).json()["id"]
    for path in [*UNTRACED, ASSET]:
        assert client.get(path).status_code == 200, path
    for session_id in [*created, left_over]:
        session_in(client, session_id, "completed")
    session_in(client, interactive, "paused")
    # Resumed once the runner that paused it has left (a resume racing it is continued by
    # that runner, in the trace that started it).
    assert app.state.workflows.wait_idle(timeout=10)
    assert client.post(f"{SESSIONS}/{interactive}/resume").status_code == 200
    session_in(client, interactive, "paused")
    assert app.state.workflows.wait_idle(timeout=10)
    assert client.post(f"{SESSIONS}/{interactive}/cancel").status_code == 200
    assert client.get(f"{SESSIONS}/{created[0]}/steps").status_code == 200
    assert client.get(f"{SESSIONS}/{uuid.uuid4()}").status_code == 404
    assert client.get("/metrics").status_code == 200
    # The background loops, idle and busy, tick on: renewals while workflows ran, sweeps at
    # each workflow's end and every lease period.
    time.sleep(2.5 * LEASE_TTL)
    renewals = [s for s in keeper if s.startswith("UPDATE sessions SET lease_expires_at")]
    sweeps = [s for s in keeper if s.startswith("SELECT sessions.id, sessions.claimed_by")]
    assert len(renewals) >= 3 and len(sweeps) >= 5, (len(renewals), len(sweeps))
    client.__exit__(None, None, None)  # shutdown flushes the batch processor
    spans = exporter.get_finished_spans()

    # Nothing for scrapes, probes or the docs pages (nor anything under them).
    paths = {span.attributes.get("url.path") for span in spans if span.kind is SpanKind.SERVER}
    assert paths.isdisjoint([*UNTRACED, ASSET])
    traced = [(m, p) for m, p in sent.requests if p not in UNTRACED and p != ASSET]

    # Roots: one server span per traced request, named by its route, and one workflow.run
    # for the session resumed at start-up. Nothing else.
    roots = [span for span in spans if is_root(span)]
    servers = [span for span in roots if span.kind is SpanKind.SERVER]
    assert Counter(span.name for span in servers) == Counter(f"{m} {p}" for m, p in traced)
    assert len(servers) == len(traced)
    others = [span for span in roots if span.kind is not SpanKind.SERVER]
    assert [(s.name, s.attributes.get("testboost.session.id")) for s in others] == [
        ("workflow.run", left_over)
    ]
    assert not [span for span in spans if span.kind is SpanKind.SERVER and not is_root(span)]
    (called,) = [span for span in servers if span.parent is not None]
    assert format(called.context.trace_id, "032x") == CALLER.split("-")[1]

    # Every span is in one of those traces, under its root.
    trace_ids = {span.context.trace_id for span in roots}
    assert len(trace_ids) == len(roots)
    assert {span.context.trace_id for span in spans} == trace_ids
    local = {span.context.span_id for span in spans}
    assert all(is_root(span) or span.parent.span_id in local for span in spans)  # type: ignore[union-attr]

    # Each workflow run is a child of the request that created or resumed its session.
    runs = Counter(
        span.attributes.get("testboost.session.id")
        for span in spans
        if span.name == "workflow.run" and not is_root(span)
    )
    assert runs == {**dict.fromkeys(created, 1), interactive: 2}
    by_id = {span.context.span_id: span for span in spans}
    for span in spans:
        if span.name == "workflow.run" and not is_root(span):
            assert span.parent is not None
            assert by_id[span.parent.span_id].name in {
                f"POST {SESSIONS}",
                f"POST {SESSIONS}/{{session_id}}/resume",
            }
    assert sum(span.name == "llm.chat" for span in spans) == fake.count

    # SQL spans: only under a request or a workflow; no file path, no credentials.
    sql = [span for span in spans if "db.system.name" in (span.attributes or {})]
    assert sql and not [span for span in sql if is_root(span)]
    url = make_url(database_url)
    hidden = [s for s in (url.password, url.database if url.host is None else None) if s]
    text = repr([(span.name, dict(span.attributes or {})) for span in spans])
    assert not [secret for secret in hidden if secret in text]
