"""A local OTLP/HTTP receiver for the push and traces variants: answers every export 200 and
keeps only counts (GET /stats), so memory stays flat however long the benchmark runs. Trace
exports are decoded for two more counts: spans, and root spans (`/v1/traces:roots`: a sampled
request's server span, or a query run outside any request).

    python -m bench.otlp_sink --port 4318
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COUNTS: dict[str, int] = {}
LOCK = threading.Lock()


def span_counts(body: bytes) -> dict[str, int]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest.FromString(body)
    spans = [
        span
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    return {"spans": len(spans), "roots": sum(not span.parent_span_id for span in spans)}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        counts = {"": 1, ":bytes": len(body)}
        if self.path == "/v1/traces":
            try:
                raw = (
                    gzip.decompress(body)
                    if self.headers.get("content-encoding") == "gzip"
                    else body
                )
                counts.update({f":{k}": v for k, v in span_counts(raw).items()})
            except Exception:  # counted, never a reason to fail the export
                counts[":undecoded"] = 1
        with LOCK:
            for suffix, value in counts.items():
                COUNTS[self.path + suffix] = COUNTS.get(self.path + suffix, 0) + value
        self._answer(b"", "application/x-protobuf")

    def do_GET(self) -> None:
        with LOCK:
            body = json.dumps(COUNTS).encode()
        self._answer(body, "application/json")

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.otlp_sink")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
