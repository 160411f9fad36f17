"""The API variants the harness compares, and the child process that serves one of them.

Every variant is the same app served as `testboost serve` serves it (same uvicorn options,
same logging). Ours differ only in standard OTEL_* variables; the three references turn our
telemetry off and add what their users add.

    python -m bench.serve VARIANT --port 8101
"""

from __future__ import annotations

import argparse
import time
from typing import Any, NamedTuple


class Variant(NamedTuple):
    description: str
    env: dict[str, str]


PULL = {"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_TRACES_EXPORTER": "none"}
# Our telemetry does nothing, the SDK stays enabled: the references build their own providers,
# which OTEL_SDK_DISABLED would turn off.
OURS_NONE = {"OTEL_METRICS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none"}
VARIANTS = {
    "off": Variant("telemetry off: the baseline", {"OTEL_SDK_DISABLED": "true"}),
    "floor": Variant("hand-written ASGI middleware on prometheus_client (reference)", OURS_NONE),
    "pull": Variant("full telemetry, pull: every request measured, /metrics", PULL),
    "pull-traces": Variant(
        "pull + traces, parentbased_traceidratio 0.1, OTLP/HTTP export",
        {
            **PULL,
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        },
    ),
    "push": Variant(
        "full telemetry, push: OTLP/HTTP every 1 s (15 s in production)",
        {
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        },
    ),
    "pfi": Variant("prometheus-fastapi-instrumentator, defaults (reference)", OURS_NONE),
    "otel-stock": Variant(
        "OpenTelemetry FastAPIInstrumentor, defaults, metrics only (reference)", OURS_NONE
    ),
}


def exports(variant: str) -> bool:
    """Whether the variant sends OTLP (and so needs a receiver)."""
    return "otlp" in VARIANTS[variant].env.values()


class FloorMetrics:
    """The least a Prometheus middleware can do: pure ASGI on prometheus_client, each label
    set's children cached, so a request costs one `inc` and one `observe`."""

    def __init__(self, app: Any, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        from telemetry.catalog import HTTP_BUCKETS

        self.app = app
        labels = ["method", "path", "status"]
        self.requests = Counter("floor_http_requests", "Requests.", labels, registry=registry)
        self.duration = Histogram(
            "floor_http_request_duration_seconds",
            "Latency.",
            labels[:2],
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
    from prometheus_client import CollectorRegistry, make_asgi_app

    from app.main import create_app

    app = create_app()
    if variant == "otel-stock":
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider

        registry = CollectorRegistry(auto_describe=False)
        provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
        FastAPIInstrumentor.instrument_app(app, meter_provider=provider)
        app.mount("/stock-metrics", make_asgi_app(registry))
    elif variant == "pfi":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator().instrument(app).expose(app, endpoint="/pfi-metrics")
    elif variant == "floor":
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
    raise SystemExit(main())
