"""Where telemetry reaches into dependencies' private internals: one of the project's two fenced
places, the other being app/core/server.py, which subclasses uvicorn's httptools protocol (the
app's HTTP server, which telemetry must not import).

Each use says why it is worth it and the version it was read against; pyproject.toml pins
those packages to a compatible range, and tests/unit/test_compat.py fails, naming the
internal, the moment one moves. Nothing else in the project imports a `_private` name.
"""

from __future__ import annotations

# opentelemetry-exporter-prometheus 0.66b2, `_mapping`: the exporter's own name and unit
# rules (spec: Prometheus and OpenMetrics compatibility). Reused so that our renderer names
# every family exactly as the SDK's Prometheus exporter, and the OTLP path, would.
from opentelemetry.exporter.prometheus._mapping import (
    map_unit,
    sanitize_attribute,
    sanitize_full_name,
)

# prometheus_client 0.26 (public module, undocumented helper): Go's float formatting, which
# the exposition format expects ("+Inf", "1e+06").
from prometheus_client.utils import floatToGoString
from sqlalchemy.pool import QueuePool

__all__ = [
    "floatToGoString",
    "map_unit",
    "pool_max_overflow",
    "sanitize_attribute",
    "sanitize_full_name",
]


def pool_max_overflow(pool: QueuePool) -> int:
    """SQLAlchemy 2.0: QueuePool keeps its overflow cap in `_max_overflow` and has no public
    reader (`overflow()` is the current overflow, not the cap)."""
    return int(pool._max_overflow)
