"""Metric readers for each `OTEL_METRICS_EXPORTER`, and the /metrics endpoint.

pull (`prometheus`): an in-process PrometheusTextReader (telemetry/exposition.py: the SDK's
collection, our own text formatting, a fraction of prometheus_client's time), served by the API
at /metrics (a plain route: mounting prometheus_client's app answers 307): OpenMetrics, with
exemplars, to a scraper that asks for it first (Prometheus does), the 0.0.4 text otherwise.
push (`otlp`): a PeriodicExportingMetricReader, cumulative temporality so Prometheus' rate()
works on what arrives; /metrics then serves an empty exposition so the scrape job keeps `up`
meaning "the API answers" without counting anything twice.
Every answer names the exporter, and the new-series hold (telemetry/series_start.py) that
`testboost doctor` compares with the scrape interval Prometheus uses, in headers.
"""

from __future__ import annotations

import gzip
import secrets
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from telemetry.catalog import API_JOB, EXPORTER_HEADER, HOLD_HEADER
from telemetry.config import TelemetryConfig
from telemetry.exposition import (
    CONTENT_TYPE,
    OPENMETRICS_CONTENT_TYPE,
    NotedTransform,
    PrometheusTextReader,
    wants_openmetrics,
)
from telemetry.series_start import seconds_text

CUMULATIVE: dict[type, AggregationTemporality] = {
    kind: AggregationTemporality.CUMULATIVE
    for kind in (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
}
NOT_HERE_NOTE = (
    "# TestBoost metrics are not exposed here (OTEL_METRICS_EXPORTER=otlp pushes them; none\n"
    "# or OTEL_SDK_DISABLED=true turns them off). This endpoint stays up so that\n"
    f'# up{{job="{API_JOB}"}} still says whether the API answers.\n'
).encode()
HTTP_WHITESPACE = " \t"
Transform = Callable[[MetricsData | None], MetricsData | None]


def prometheus_reader(
    produce: Transform | None = None, transform: NotedTransform | None = None
) -> PrometheusTextReader:
    # No otel_scope_* labels, no target_info: the contract's series carry only its labels.
    return PrometheusTextReader(produce=produce, transform=transform)


def otlp_metric_exporter(config: TelemetryConfig) -> MetricExporter:
    if config.metrics_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcExporter,
        )

        return GrpcExporter(preferred_temporality=CUMULATIVE)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpExporter,
    )

    return HttpExporter(preferred_temporality=CUMULATIVE)


def otlp_reader(config: TelemetryConfig, transform: Transform | None = None) -> MetricReader:
    # Exports run on the reader's own thread: nothing waits for the collector on a request.
    exporter = otlp_metric_exporter(config)
    if transform is not None:
        exporter = TransformingExporter(exporter, transform)
    return PeriodicExportingMetricReader(exporter, export_interval_millis=config.export_interval_ms)


class TransformingExporter(MetricExporter):
    """Hands each collection through `transform` before the wrapped exporter sends it."""

    def __init__(self, inner: MetricExporter, transform: Transform) -> None:
        super().__init__(preferred_temporality=CUMULATIVE)
        self._inner = inner
        self._transform = transform

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        data = self._transform(metrics_data) or metrics_data
        return self._inner.export(data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class MetricsEndpoint:
    """GET /metrics: what `render` returns (None: nothing exposed here), in the format the
    scraper's Accept header prefers (`render(True)`: OpenMetrics), gzip when asked, behind a
    bearer token when one is configured; `hold_s`, the new-series hold, in a header."""

    def __init__(
        self,
        render: Callable[[bool], bytes] | None,
        exporter: str,
        token: str | None,
        hold_s: float = 0.0,
    ) -> None:
        self._render = render
        self._token = token.encode("utf-8") if token else None
        self._headers = {EXPORTER_HEADER: exporter, HOLD_HEADER: seconds_text(hold_s)}

    async def handle(self, request: Request) -> Response:
        if self._token is not None and not self._authorized(request):
            return JSONResponse(
                {"detail": "metrics require a bearer token (TESTBOOST_METRICS_TOKEN)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        content_type = CONTENT_TYPE
        if self._render is None:
            # Comments only: the 0.0.4 text whatever was asked (OpenMetrics has no comments).
            body = NOT_HERE_NOTE
        else:
            openmetrics = wants_openmetrics(request.headers.get("accept", ""))
            if openmetrics:
                content_type = OPENMETRICS_CONTENT_TYPE
            # Collection runs observable callbacks (a DB count): keep it off the event loop.
            body = await run_in_threadpool(self._render, openmetrics)
        headers = {"Content-Type": content_type, **self._headers}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(body, headers=headers)

    def _authorized(self, request: Request) -> bool:
        assert self._token is not None
        presented = bearer_token(request.headers.get("authorization", ""))
        return secrets.compare_digest(presented or b"", self._token)


def bearer_token(authorization: str) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header value, as the bytes sent (header
    values arrive decoded as Latin-1), without HTTP's optional whitespace (spaces, tabs) around
    it; None for another scheme. The API key's rule too (app/core/security.py)."""
    scheme, _, token = authorization.strip(HTTP_WHITESPACE).partition(" ")
    token = token.strip(HTTP_WHITESPACE)
    return token.encode("latin-1") if scheme.lower() == "bearer" and token else None
