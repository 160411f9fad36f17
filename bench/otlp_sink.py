"""A local OTLP/HTTP receiver for the variants that export: answers every export 200 and
counts, per path, the exports, and for traces the spans and the root spans (a sampled
request's server span, or a query run outside any request)."""

from __future__ import annotations

import gzip
import logging
import re
import threading
from collections import Counter

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from devstack.processes import free_port


class OtlpSink:
    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per export
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.server = HTTPServer("127.0.0.1", free_port(), threaded=True)
        exports = re.compile(r".*/v1/(metrics|traces)")
        self.server.expect_request(exports, method="POST").respond_with_handler(self._receive)
        self.server.start()

    def endpoint(self, prefix: str = "") -> str:
        """OTEL_EXPORTER_OTLP_ENDPOINT; a `prefix` keeps one sender's counts apart."""
        return self.server.url_for(prefix).rstrip("/")

    def _receive(self, request: Request) -> Response:
        body = request.get_data()
        counts = Counter({request.path: 1})
        if request.path.endswith("/v1/traces"):
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            spans = [
                span
                for resource in ExportTraceServiceRequest.FromString(body).resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]
            counts[request.path + ":spans"] = len(spans)
            counts[request.path + ":roots"] = sum(not span.parent_span_id for span in spans)
        with self._lock:
            self.counts.update(counts)
        return Response(b"", content_type="application/x-protobuf")

    def stop(self) -> None:
        self.server.clear()
        self.server.stop()
