"""Log format and levels for the API's processes: one line per record, with the trace
context of the span it was written in."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s span=%(span_id)s] %(message)s"


def configure_logging(level: str) -> None:
    from telemetry.tracing import TraceContextFilter

    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Alembic's plugin registry logs seven INFO lines at every start: nothing an operator needs.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
