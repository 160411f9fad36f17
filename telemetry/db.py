"""Pool gauges read from the SQLAlchemy pool itself, and SQL spans when tracing is on.

Why not the SQLAlchemy instrumentation's `db.client.connections.usage` for the pool families:
it has no maximum, and a View cannot keep only its `state=used` points, so
`_size` would be idle + used. Reading `pool.checkedout()` at collection time is exact, costs
nothing per query, and gives `_size` and `_max` the same (empty) label set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import TracerProvider
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from telemetry._compat import pool_max_overflow, sql_engine_tracer
from telemetry.mapping import pool_max

log = logging.getLogger(__name__)


def pool_readers(engine: Engine) -> tuple[Callable[[], float | None], Callable[[], float | None]]:
    """(checked-out connections, most connections) of the engine's pool."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return (lambda: None), (lambda: None)
    capacity = float(pool_max(pool.size(), pool_max_overflow(pool)))
    return (lambda: float(pool.checkedout())), (lambda: capacity)


def trace_sql(engine: Engine, tracer_provider: TracerProvider) -> None:
    """SQL spans for this engine, from the SQLAlchemy instrumentation's engine tracer.

    Not `SQLAlchemyInstrumentor().instrument(engine=...)`: it is a process-wide singleton
    that ignores a second engine (contrib#1103) and also patches `create_engine` globally.
    """
    engine_tracer, version = sql_engine_tracer()
    tracer = tracer_provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", version)
    # Metrics off: the pool families above are the contract's; this adds spans only.
    unused = NoOpMeterProvider().get_meter("unused").create_up_down_counter("unused")
    engine_tracer(tracer, engine, unused)
