"""The request-path shortcuts in telemetry/ keep what they skip invisible: SQL spans only under
a sampled parent (and named as the database conventions say), exemplars only where they can
leave the process, propagation headers read from the raw ASGI list, excluded paths never
traced."""

from __future__ import annotations

import dataclasses

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from telemetry import TelemetryConfig, TelemetryConfigError, _exemplars, db
from telemetry.http import SCOPE_HEADERS, HttpTelemetry


@pytest.fixture
def traced_engine(tmp_path):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # parent-based, always on at the root
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.trace_sql(engine, provider)
    yield engine, exporter, provider.get_tracer("test")
    engine.dispose()


def query_under(engine, parent: trace.Span | None) -> None:
    token = context.attach(trace.set_span_in_context(parent)) if parent else None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).fetchall()
    finally:
        if token is not None:
            context.detach(token)


def sql_spans(exporter: InMemorySpanExporter) -> list:
    return [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]


def test_no_sql_span_under_an_unsampled_parent(traced_engine) -> None:
    engine, exporter, _tracer = traced_engine
    unsampled = NonRecordingSpan(
        SpanContext(trace_id=1, span_id=2, is_remote=True, trace_flags=TraceFlags(0))
    )
    query_under(engine, unsampled)
    assert sql_spans(exporter) == []


def test_sql_spans_follow_the_database_conventions(traced_engine) -> None:
    engine, exporter, tracer = traced_engine
    with tracer.start_as_current_span("request"), engine.begin() as conn:
        conn.execute(text("CREATE TABLE steps (id INTEGER, name TEXT)"))
        conn.execute(text("INSERT INTO steps VALUES (:id, :name)"), [{"id": 1, "name": "a"}])
        conn.execute(
            text("INSERT INTO steps VALUES (:id, :name)"), [{"id": i, "name": "b"} for i in (2, 3)]
        )
        conn.execute(text('UPDATE "steps" SET name = :name WHERE id = 1'), {"name": "secret"})
        conn.execute(text("SELECT steps.id FROM steps WHERE steps.name = :n"), {"n": "secret"})
        conn.execute(text("DELETE FROM steps WHERE id = 3"))
        conn.execute(text("SELECT 1"))
    spans = sql_spans(exporter)
    assert [s.name for s in spans] == [
        "CREATE",
        "INSERT steps",
        "INSERT steps",  # executemany: one span for the batch
        "UPDATE steps",
        "SELECT steps",
        "DELETE steps",
        "SELECT",
    ]
    select = spans[4].attributes
    assert select["db.system.name"] == "sqlite"
    assert select["db.operation.name"] == "SELECT"
    assert select["db.collection.name"] == "steps"
    assert select["db.query.text"] == "SELECT steps.id FROM steps WHERE steps.name = ?"
    every = [value for span in spans for value in span.attributes.values()]
    assert not any("secret" in str(v) or "db.sqlite" in str(v) for v in every)  # no values, no path


def test_a_failing_statement_ends_its_span_with_the_error(traced_engine) -> None:
    engine, exporter, tracer = traced_engine
    with (
        tracer.start_as_current_span("request"),
        engine.connect() as conn,
        pytest.raises(Exception, match="no such table"),
    ):
        conn.execute(text("SELECT x FROM missing"))
    (span,) = sql_spans(exporter)
    assert span.name == "SELECT missing"
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.events[0].name == "exception"


def test_sql_span_under_a_sampled_parent_and_none_outside_any_span(traced_engine) -> None:
    engine, exporter, tracer = traced_engine
    with tracer.start_as_current_span("request") as parent:
        query_under(engine, parent)
    query_under(engine, None)  # the API's upkeep (leases, sweeps, migrations): not traced
    (span,) = sql_spans(exporter)
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id


@pytest.mark.parametrize(
    "config,env,off",
    [
        (TelemetryConfig(), None, True),  # no traces: nothing to link
        (TelemetryConfig(traces_exporter="otlp"), None, False),  # pull: OpenMetrics carries them
        (TelemetryConfig(metrics_exporter="otlp"), None, True),
        (TelemetryConfig(metrics_exporter="otlp", traces_exporter="otlp"), None, False),
        (TelemetryConfig(metrics_exporter="none", traces_exporter="otlp"), None, True),
        (TelemetryConfig(), "trace_based", False),  # the standard variable decides
    ],
)
def test_exemplars_only_where_they_can_leave(
    config: TelemetryConfig, env: str | None, off: bool
) -> None:
    if env is not None:  # the standard variable, as from_env reads it
        config = dataclasses.replace(
            config,
            exemplar_filter=TelemetryConfig.from_env(
                {"OTEL_METRICS_EXEMPLAR_FILTER": env}
            ).exemplar_filter,
        )
    assert isinstance(_exemplars(config), AlwaysOffExemplarFilter) is off


def test_an_unknown_exemplar_filter_stops_start_up() -> None:
    with pytest.raises(TelemetryConfigError, match="OTEL_METRICS_EXEMPLAR_FILTER='sometimes'"):
        TelemetryConfig.from_env({"OTEL_METRICS_EXEMPLAR_FILTER": "sometimes"})


def test_scope_headers_getter() -> None:
    raw = [(b"host", b"x"), (b"traceparent", b"00-ab-cd-01"), (b"baggage", b"a=1")]
    assert SCOPE_HEADERS.get(raw, "traceparent") == ["00-ab-cd-01"]
    assert SCOPE_HEADERS.get(raw, "TraceParent") == ["00-ab-cd-01"]
    assert SCOPE_HEADERS.get(raw, "tracestate") is None
    assert SCOPE_HEADERS.keys(raw) == ["host", "traceparent", "baggage"]


def test_postgres_spans_name_the_server_never_the_credentials() -> None:
    """db.namespace and server.address from the URL, never its user or password; SQLite (the
    tests above) has no server: its file path appears nowhere."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = create_engine("postgresql+psycopg://tb_user:s3cret@db.internal:5433/testboost")
    db.trace_sql(engine, provider)

    class Cursor:  # the dialect runs the statement on it; no server needed
        def execute(self, *args: object) -> None:
            pass

    statement = "SELECT sessions.id FROM sessions WHERE sessions.id = %(id)s"
    with provider.get_tracer("test").start_as_current_span("request"):
        for listener in engine.dialect.dispatch.do_execute:
            listener(Cursor(), statement, {"id": "the-value"}, None)
    (span,) = sql_spans(exporter)
    assert span.name == "SELECT sessions"
    assert dict(span.attributes or {}) == {
        "db.system.name": "postgresql",
        "server.address": "db.internal",
        "server.port": 5433,
        "db.namespace": "testboost",
        "db.query.text": statement,
        "db.operation.name": "SELECT",
        "db.collection.name": "sessions",
    }


def http_app(excluded: str | None, exporter: InMemorySpanExporter) -> Starlette:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def ok(_request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/metrics", ok), Route("/api/v2/health", ok)])
    pattern = TelemetryConfig(excluded_urls=(excluded,) if excluded else ()).excluded_urls_pattern
    recorded: list[str] = []
    app.add_middleware(
        HttpTelemetry,
        record=lambda method, path, status, seconds: recorded.append(path),
        tracer=provider.get_tracer("test"),
        excluded=pattern,
    )
    app.state.recorded = recorded
    return app


@pytest.mark.parametrize(
    "excluded,traced",
    [
        (None, ["GET /metrics", "GET /api/v2/health"]),
        ("^/metrics$", ["GET /api/v2/health"]),
        ("health", ["GET /metrics"]),  # searched anywhere in the path, as the convention does
        ("^/api/v2/health$", ["GET /metrics"]),  # in the path, whatever the Host header
    ],
)
def test_excluded_paths_are_counted_but_never_traced(excluded: str | None, traced: list) -> None:
    exporter = InMemorySpanExporter()
    app = http_app(excluded, exporter)
    with TestClient(app, base_url="http://api.example:8000") as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/v2/health").status_code == 200
    assert [span.name for span in exporter.get_finished_spans()] == traced
    assert app.state.recorded == ["/metrics", "/api/v2/health"]  # the metrics see both
