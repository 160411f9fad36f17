"""A minimal OTLP/HTTP (protobuf) receiver on 127.0.0.1 that decodes what the SDK exports."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from werkzeug import Request, Response

from tests.support.fake_http import FakeHTTPServer


class OtlpReceiver:
    def __init__(self, port: int = 0) -> None:
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.traces: list[ExportTraceServiceRequest] = []
        self.lock = threading.Lock()
        self.server = FakeHTTPServer(port=port)
        self.server.no_handler_status_code = 404
        self.server.expect_request("/v1/metrics", method="POST").respond_with_handler(
            lambda request: self._keep(request, ExportMetricsServiceRequest, self.metrics)
        )
        self.server.expect_request("/v1/traces", method="POST").respond_with_handler(
            lambda request: self._keep(request, ExportTraceServiceRequest, self.traces)
        )

    def _keep(self, request: Request, kind: Any, into: list[Any]) -> Response:
        message = kind.FromString(request.get_data())
        with self.lock:
            into.append(message)
        return Response(b"", content_type="application/x-protobuf")

    @property
    def endpoint(self) -> str:
        return self.server.root

    def __enter__(self) -> OtlpReceiver:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

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
