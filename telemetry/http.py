"""HTTP server metrics (and spans, when tracing is on) from one pure ASGI middleware.

Why not FastAPIInstrumentor: measured side by side by `make bench` (docs/benchmarks.md) it
costs several times the throughput this middleware does, and by default it labels series with
the client's Host header (every Host a client makes up is one more series). This one records
the contract's families directly and starts the same server span the instrumentation would
(name "METHOD route", http.* semantic-convention attributes, W3C context extracted), except
for the paths `excluded` matches (the scrapes, probes and docs pages by default,
telemetry/config.py): those are counted, never traced.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextvars import Token

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetry.mapping import endpoint_paths, method_label, path_label, status_label

RecordHttp = Callable[[str, str, str, float], None]
RawHeaders = list[tuple[bytes, bytes]]


class ScopeHeaders(Getter[RawHeaders]):
    """Reads propagation headers straight from the ASGI scope's (lower-cased) header list,
    instead of decoding every header into a dict first: the propagators ask for two or three
    names, a browser sends a dozen headers or more."""

    def get(self, carrier: RawHeaders, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier if header == name]
        return values or None

    def keys(self, carrier: RawHeaders) -> list[str]:
        return [header.decode("latin-1") for header, _value in carrier]


SCOPE_HEADERS = ScopeHeaders()


class HttpTelemetry:
    def __init__(
        self,
        app: ASGIApp,
        record: RecordHttp,
        tracer: trace.Tracer | None,
        excluded: re.Pattern[str] | None = None,
    ) -> None:
        self.app = app
        self.record = record
        self.tracer = tracer
        self.excluded = excluded
        self._endpoint_paths: dict[object, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = method_label(scope["method"])
        traced = self.tracer is not None and self._traced(scope["path"])
        span, token = self._start_span(scope, method) if traced else (None, None)
        started = time.perf_counter()
        status = 500  # an exception escaping the app is answered 500 by Starlette

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception as exc:
            if span is not None:
                span.record_exception(exc)
            raise
        finally:
            path = self._path(scope)
            self.record(method, path, status_label(status), time.perf_counter() - started)
            if span is not None and token is not None:
                _end_span(span, method, path, status)
                context.detach(token)

    def _traced(self, path: str) -> bool:
        # Searched in the path, not in the URL the instrumentations rebuild from the client's
        # Host header: `^/health$` means what it says, whatever host the client named.
        return self.excluded is None or self.excluded.search(path) is None

    def _path(self, scope: Scope) -> str:
        if self._endpoint_paths is None and "endpoint" in scope and "app" in scope:
            # Routes are fixed once the app serves; map them on the first request that needs it.
            self._endpoint_paths = endpoint_paths(scope["app"].routes)
        return path_label(scope, self._endpoint_paths or {})

    def _start_span(self, scope: Scope, method: str) -> tuple[trace.Span, Token[Context]]:
        assert self.tracer is not None
        parent = propagate.extract(scope["headers"], getter=SCOPE_HEADERS)
        span = self.tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        return span, context.attach(trace.set_span_in_context(span, parent))


def _end_span(span: trace.Span, method: str, path: str, status: int) -> None:
    if span.is_recording():
        span.update_name(f"{method} {path}")
        span.set_attribute("http.route", path)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    span.end()
