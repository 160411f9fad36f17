"""A minimal OTLP/HTTP (protobuf) receiver on 127.0.0.1 that decodes what the SDK exports."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class OtlpReceiver:
    def __init__(self, port: int = 0) -> None:
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.traces: list[ExportTraceServiceRequest] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/v1/metrics":
                    message: Any = ExportMetricsServiceRequest()
                    message.ParseFromString(body)
                    with receiver.lock:
                        receiver.metrics.append(message)
                elif self.path == "/v1/traces":
                    message = ExportTraceServiceRequest()
                    message.ParseFromString(body)
                    with receiver.lock:
                        receiver.traces.append(message)
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def latest_points(self) -> dict[str, list[tuple[dict[str, str], Any]]]:
        """Metric name → (attributes, data point) of the most recent export (cumulative)."""
        with self.lock:
            if not self.metrics:
                return {}
            request = self.metrics[-1]
        points: dict[str, list[tuple[dict[str, str], Any]]] = {}
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        attrs = {a.key: a.value.string_value for a in point.attributes}
                        points.setdefault(metric.name, []).append((attrs, point))
        return points

    def spans(self) -> list[Any]:
        with self.lock:
            requests = list(self.traces)
        return [
            span
            for request in requests
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


class GrpcOtlpReceiver(OtlpReceiver):
    """The same receiver over OTLP/gRPC (metrics only)."""

    def __init__(self) -> None:
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as rpc
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceResponse,
        )

        self.metrics = []
        self.traces = []
        self.lock = threading.Lock()
        receiver = self

        class Service(rpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                with receiver.lock:
                    receiver.metrics.append(request)
                return ExportMetricsServiceResponse()

        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        rpc.add_MetricsServiceServicer_to_server(Service(), self.grpc_server)
        self.port = self.grpc_server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GrpcOtlpReceiver:
        self.grpc_server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.grpc_server.stop(grace=None)
