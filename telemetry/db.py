"""Pool gauges read from the SQLAlchemy pool itself, and SQL spans when tracing is on.

Why not the SQLAlchemy instrumentation's `db.client.connections.usage` for the pool families:
it has no maximum (field facts), and a View cannot keep only its `state=used` points, so
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

from telemetry.mapping import pool_max

log = logging.getLogger(__name__)


def pool_readers(engine: Engine) -> tuple[Callable[[], float | None], Callable[[], float | None]]:
    """(checked-out connections, most connections) of the engine's pool."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return (lambda: None), (lambda: None)
    capacity = float(pool_max(pool.size(), pool._max_overflow))
    return (lambda: float(pool.checkedout())), (lambda: capacity)


def trace_sql(engine: Engine, tracer_provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # Metrics off: the pool families above are the contract's; this adds spans only.
    SQLAlchemyInstrumentor().instrument(
        engine=engine, tracer_provider=tracer_provider, meter_provider=NoOpMeterProvider(),
        enable_commenter=False,
    )
