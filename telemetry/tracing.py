"""Traces, off by default: `OTEL_TRACES_EXPORTER=otlp|console` turns them on, the standard
`OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` choose sampling (read by the SDK itself)."""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from telemetry.config import TelemetryConfig

TRACER_NAME = "testboost"


def span_exporter(config: TelemetryConfig) -> SpanExporter:
    if config.traces_exporter == "console":
        return ConsoleSpanExporter()
    if config.traces_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


def tracer_provider(config: TelemetryConfig, resource: Resource) -> TracerProvider | None:
    if config.disabled or config.traces_exporter == "none":
        return None
    provider = TracerProvider(resource=resource)
    # Batching keeps export off the request path; the queue is bounded (2048 spans by default).
    provider.add_span_processor(BatchSpanProcessor(span_exporter(config)))
    return provider


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` to every log record ("-" outside a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        else:
            record.trace_id = record.span_id = "-"
        return True
