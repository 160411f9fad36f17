"""Serve one benchmark variant of the API, exactly as `testboost serve` would (same uvicorn
options, same logging), with the telemetry that the variant names.

    python -m bench.serve VARIANT --port 8101

Variants that use our telemetry take it from the standard OTEL_* variables the harness sets
(off, pull, pull-traces, push). The others compare against what users know:

  otel-stock OpenTelemetry's FastAPIInstrumentor with its defaults (metrics only, old HTTP
             semconv) on an in-process PrometheusMetricReader, our telemetry off.
  pfi        prometheus-fastapi-instrumentator with its defaults, our telemetry off.
  floor      the least a Prometheus middleware can do: `FloorMetrics` below, our telemetry off.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

VARIANTS = ("off", "pull", "pull-traces", "push", "otel-stock", "pfi", "floor")


class FloorMetrics:
    """The floor: a hand-written pure ASGI middleware on prometheus_client with each label
    set's children cached, so a request costs one `inc` and one `observe` (the contract's two
    HTTP families, labelled by route template as ours are)."""

    def __init__(self, app: Any, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        from telemetry.catalog import HTTP_BUCKETS

        self.app = app
        self.requests = Counter(
            "floor_http_requests", "Requests.", ["method", "path", "status"], registry=registry
        )
        self.duration = Histogram(
            "floor_http_request_duration_seconds",
            "Latency.",
            ["method", "path"],
            registry=registry,
            buckets=HTTP_BUCKETS,
        )
        self.children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            key = (scope["method"], route.path if route else "<unmatched>", status)
            children = self.children.get(key)
            if children is None:
                children = self.children[key] = (
                    self.requests.labels(key[0], key[1], str(status)),
                    self.duration.labels(key[0], key[1]),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - started)


def build(variant: str) -> Any:
    from app.main import create_app

    app = create_app()
    if variant == "otel-stock":
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import CollectorRegistry, make_asgi_app

        registry = CollectorRegistry(auto_describe=False)
        provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
        FastAPIInstrumentor.instrument_app(app, meter_provider=provider)
        app.mount("/stock-metrics", make_asgi_app(registry))
    elif variant == "pfi":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator().instrument(app).expose(app, endpoint="/pfi-metrics")
    elif variant == "floor":
        from prometheus_client import CollectorRegistry, make_asgi_app

        registry = CollectorRegistry(auto_describe=False)
        app.add_middleware(FloorMetrics, registry=registry)
        app.mount("/floor-metrics", make_asgi_app(registry))
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.serve")
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    import uvicorn

    from app.core.config import load_settings
    from app.core.logs import configure_logging

    configure_logging(load_settings().log_level)
    uvicorn.run(
        build(args.variant), host="127.0.0.1", port=args.port, log_config=None, proxy_headers=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
