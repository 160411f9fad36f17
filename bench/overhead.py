"""Per-request cost of the HTTP telemetry itself, in-process: an ASGI app that answers at once,
driven directly (no sockets, no server), bare and wrapped by the middleware. Precise where
wrk's figures are noisy, and it shows what each optimisation bought, µs per request.

    python -m bench.overhead
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import TraceBasedExemplarFilter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from telemetry.http import HttpTelemetry
from telemetry.instruments import Instruments

ROUTE = "/api/v2/sessions/{session_id}"
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64)"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, br"),
    (b"accept-language", b"en"),
    (b"cookie", b"a=b"),
    (b"x-request-id", b"abc"),
]


class _Route:
    path = ROUTE


async def endpoint(scope: Any, receive: Any, send: Any) -> None:
    scope["route"] = _Route()  # what the router leaves in the scope
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


class NullExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def tracer(ratio: float) -> Any:
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(NullExporter()))
    return provider.get_tracer("bench")


def instruments(exemplars: bool) -> Instruments:
    return Instruments(
        "testboost", Resource.get_empty(), TraceBasedExemplarFilter() if exemplars else None
    )


async def per_request_us(app: Any, requests: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Any) -> None:
        return None

    def scope() -> dict[str, Any]:
        return {
            "type": "http",
            "method": "GET",
            "path": "/api/v2/sessions/abc",
            "headers": HEADERS,
            "scheme": "http",
        }

    started = time.perf_counter()
    for _ in range(requests):
        await app(scope(), receive, send)
    return (time.perf_counter() - started) / requests * 1e6


def variants() -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {
        "bare app": lambda: endpoint,
        "pull (metrics)": lambda: HttpTelemetry(
            endpoint, record=instruments(False).http_request, tracer=None
        ),
        "pull, exemplars on": lambda: HttpTelemetry(
            endpoint, record=instruments(True).http_request, tracer=None
        ),
        "pull + spans 10 %": lambda: HttpTelemetry(
            endpoint, record=instruments(False).http_request, tracer=tracer(0.1)
        ),
        "pull + spans 100 %": lambda: HttpTelemetry(
            endpoint, record=instruments(False).http_request, tracer=tracer(1.0)
        ),
    }
    return out


def run(requests: int = 20_000, rounds: int = 5) -> list[Any]:
    apps = {name: make() for name, make in variants().items()}
    results: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():  # interleaved, like the wrk rounds
            results[name].append(asyncio.run(per_request_us(app, requests)))
    bare = statistics.median(results["bare app"])
    return [
        (name, statistics.median(v), statistics.median(v) - bare) for name, v in results.items()
    ]


def sql_us_per_query(tmp_db: Path, ratio: float, traced: bool, queries: int = 5_000) -> float:
    """µs per `SELECT 1` on SQLite inside a request span sampled at `ratio`, with or without
    the SQL spans of telemetry/db.py."""
    from opentelemetry import context, trace
    from sqlalchemy import create_engine, text

    from telemetry import db

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(NullExporter()))
    engine = create_engine(f"sqlite:///{tmp_db}")
    if traced:
        db.trace_sql(engine, provider)
    request_tracer = provider.get_tracer("bench")
    statement = text("SELECT 1")
    with engine.connect() as conn:
        started = time.perf_counter()
        for _ in range(queries):
            span = request_tracer.start_span("GET")
            token = context.attach(trace.set_span_in_context(span))
            conn.execute(statement).fetchall()
            context.detach(token)
            span.end()
        elapsed = time.perf_counter() - started
    engine.dispose()
    provider.shutdown()
    return elapsed / queries * 1e6


def sql_table(tmp_db: Path, queries: int = 5_000) -> str:
    lines = [
        "| SQL spans (SQLite `SELECT 1` in a request span) | 0 % sampled | 10 % sampled |",
        "|---|---:|---:|",
    ]
    for label, traced in (("no SQL spans", False), ("telemetry/db.py", True)):
        figures = [sql_us_per_query(tmp_db, r, traced, queries) for r in (0.0, 0.1)]
        lines.append(f"| {label} | {figures[0]:.1f} µs | {figures[1]:.1f} µs |")
    return "\n".join(lines)


def table(rows: list[Any]) -> str:
    lines = ["| middleware | µs per request | added µs |", "|---|---:|---:|"]
    lines += [f"| {name} | {total:.1f} | {added:+.1f} |" for name, total, added in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.overhead")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(table(run(args.requests, args.rounds)))
    print()
    with tempfile.TemporaryDirectory() as tmp:
        print(sql_table(Path(tmp) / "bench.db"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
