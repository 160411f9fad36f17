"""Pool gauges read from the SQLAlchemy pool itself, and SQL spans when tracing is on.

Why not the SQLAlchemy instrumentation's `db.client.connections.usage` for the pool families:
it has no maximum, and a View cannot keep only its `state=used` points, so
`_size` would be idle + used. Reading `pool.checkedout()` at collection time is exact, costs
nothing per query, and gives `_size` and `_max` the same (empty) label set.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, TracerProvider
from sqlalchemy import Engine, event
from sqlalchemy.pool import QueuePool

from telemetry._compat import pool_max_overflow
from telemetry.mapping import pool_max
from telemetry.tracing import TRACER_NAME

log = logging.getLogger(__name__)


def pool_readers(engine: Engine) -> tuple[Callable[[], float | None], Callable[[], float | None]]:
    """(checked-out connections, most connections) of the engine's pool."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return (lambda: None), (lambda: None)
    capacity = float(pool_max(pool.size(), pool_max_overflow(pool)))
    return (lambda: float(pool.checkedout())), (lambda: capacity)


def trace_sql(engine: Engine, tracer_provider: TracerProvider) -> None:
    """A CLIENT span per statement the engine runs, named and described by the database
    semantic conventions ("SELECT sessions"; db.system.name, db.operation.name,
    db.collection.name, db.query.text with its placeholders, never the values; the server's
    address for a networked database, never a file path or credentials).

    Why not opentelemetry-instrumentation-sqlalchemy: its engine-level cursor listeners put
    every statement on SQLAlchemy's event path, a cost paid by every query whether or not it
    is traced (the same with empty listeners), and its pool listeners add more to each request;
    together several times the whole cost of tracing a sample of requests (docs/benchmarks.md).
    The dialect's `do_execute` events are SQLAlchemy's hook for running the cursor call
    itself: they cost nothing measurable when nothing is traced.

    Only statements under a sampled span are traced. Under a parent that was not sampled the
    span could only be a non-recording one. Outside any span runs only the API's own upkeep
    (start-up migrations, the workflow engine's lease renewals, sweeps and hand-backs): a lone
    SQL span per statement there would be most of the traces and answer nobody's question, and
    the pool gauges and the database's own statistics already show it."""
    tracer = tracer_provider.get_tracer(TRACER_NAME)
    dialect = engine.dialect
    # sqlite, postgresql: the API's two databases bear the same name in both.
    base = {"db.system.name": dialect.name}
    if engine.url.host:
        base["server.address"] = engine.url.host
        if engine.url.port:
            base["server.port"] = engine.url.port  # type: ignore[assignment]
        if engine.url.database:
            base["db.namespace"] = engine.url.database
    summaries: dict[str, tuple[str, dict[str, str]]] = {}

    def described(statement: str) -> tuple[str, dict[str, str]]:
        found = summaries.get(statement)
        if found is None:
            operation, target = _summary(statement)
            attributes = {**base, "db.query.text": statement}
            if operation:
                attributes["db.operation.name"] = operation
            if target:
                attributes["db.collection.name"] = target
            name = " ".join(part for part in (operation, target) if part) or base["db.system.name"]
            found = (name, attributes)
            if len(summaries) < _SUMMARIES:  # SQLAlchemy's statements are few and reused
                summaries[statement] = found
        return found

    def traced(statement: str) -> Any:
        # No span at all (an invalid context) has its sampled flag unset too.
        if not trace.get_current_span().get_span_context().trace_flags.sampled:
            return None
        name, attributes = described(statement)
        return tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def run_traced(run: Callable[..., Any]) -> Callable[..., bool]:
        def listener(cursor: Any, statement: str, *rest: Any) -> bool:
            span = traced(statement)
            if span is None:
                return False  # the dialect runs it, as without tracing
            with span:
                run(cursor, statement, *rest)
            return True  # run here: SQLAlchemy does not run it again

        return listener

    for name in ("do_execute", "do_executemany", "do_execute_no_params"):
        event.listen(engine, name, run_traced(getattr(dialect, name)))


_SUMMARIES = 1000
_OPERATION = re.compile(r"\s*(\w+)")
# Where the statement names the table it works on, by operation (SQLAlchemy's own SQL).
_TARGET = {
    "SELECT": re.compile(r"\bFROM\s+\"?([A-Za-z_][\w.]*)"),
    "DELETE": re.compile(r"\bFROM\s+\"?([A-Za-z_][\w.]*)"),
    "INSERT": re.compile(r"\bINTO\s+\"?([A-Za-z_][\w.]*)"),
    "UPDATE": re.compile(r"^\s*UPDATE\s+\"?([A-Za-z_][\w.]*)"),
}


def _summary(statement: str) -> tuple[str, str]:
    """(operation, table) of a statement, "" where it has none: "SELECT 1" is ("SELECT", "")."""
    first = _OPERATION.match(statement)
    operation = first.group(1).upper() if first else ""
    pattern = _TARGET.get(operation)
    target = pattern.search(statement) if pattern else None
    return operation, target.group(1) if target else ""
