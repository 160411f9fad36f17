"""Serve one benchmark variant of the API, exactly as `testboost serve` would (same uvicorn
options, same logging), with the telemetry that the variant names.

    python -m bench.serve VARIANT --port 8101

Variants that use our telemetry take it from the standard OTEL_* variables the harness sets
(off, pull, pull-traces, push). The others compare against what users know:

  before     our telemetry as committed at HEAD (the harness extracts it into a folder and
             passes it as --telemetry-from); OTEL_* as for `pull`.
  otel-stock OpenTelemetry's FastAPIInstrumentor with its defaults (metrics only, old HTTP
             semconv) on an in-process PrometheusMetricReader, our telemetry off.
  pfi        prometheus-fastapi-instrumentator with its defaults, our telemetry off.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

VARIANTS = ("off", "pull", "pull-traces", "push", "before", "otel-stock", "pfi")


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
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.serve")
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--telemetry-from", help="folder holding another `telemetry` package")
    args = parser.parse_args(argv)
    if args.telemetry_from:
        # Before anything imports `telemetry`: the committed package shadows the working tree's.
        sys.path.insert(0, args.telemetry_from)

    import uvicorn

    from app.core.config import load_settings
    from app.core.logs import configure_logging

    configure_logging(load_settings().log_level)
    import telemetry

    if args.telemetry_from:
        assert telemetry.__file__ and telemetry.__file__.startswith(args.telemetry_from)
    uvicorn.run(
        build(args.variant), host="127.0.0.1", port=args.port, log_config=None, proxy_headers=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
