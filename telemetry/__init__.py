"""TestBoost telemetry: the public face. The app calls `setup()` once, then the record
methods at its single call sites; everything else in this package is an implementation detail.

    telemetry = setup()                     # OTEL_* variables choose exporters
    telemetry.instrument_app(app, token)    # HTTP families (+ spans) and /metrics
    telemetry.observe_db_pool(engine)
    telemetry.observe_active_sessions(count)
    telemetry.prime(provider, model, workflow_types, app.routes)  # known series at zero
    telemetry.record_llm_attempt(...); telemetry.record_workflow_finished(...)
    telemetry.shutdown()                    # flushes push exporters
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

from opentelemetry import trace
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from telemetry import catalog, db, exporters, instance, runtime, tracing
from telemetry.config import TelemetryConfig, TelemetryConfigError
from telemetry.exposition import NotedTransform, PrometheusTextReader
from telemetry.http import HttpTelemetry
from telemetry.instruments import Instruments, observe
from telemetry.mapping import route_label_sets
from telemetry.metrics_dir import MetricsDirError
from telemetry.multiprocess import WorkerMetrics
from telemetry.series_start import SeriesStart

__all__ = ["Telemetry", "TelemetryConfig", "TelemetryConfigError", "setup"]

log = logging.getLogger(__name__)
METER_NAME = "testboost"
_NO_TRACER = trace.NoOpTracer()
EXEMPLAR_FILTERS: dict[str, type[ExemplarFilter]] = {
    "always_on": AlwaysOnExemplarFilter,
    "always_off": AlwaysOffExemplarFilter,
    "trace_based": TraceBasedExemplarFilter,
}


class Telemetry:
    def __init__(
        self,
        config: TelemetryConfig,
        readers: list[MetricReader],
        pull_reader: PrometheusTextReader | None,
        tracer_provider: TracerProvider | None,
        resource: Resource,
        instruments: Instruments | None = None,
        workers: WorkerMetrics | None = None,
    ) -> None:
        self.config = config
        self.pull_reader = pull_reader
        self.workers = workers
        self.tracer_provider = tracer_provider
        self.tracer: trace.Tracer = (
            tracer_provider.get_tracer(tracing.TRACER_NAME) if tracer_provider else _NO_TRACER
        )
        self.meter_provider: MeterProvider | None = None
        self.meter: Meter | None = None
        self.instruments = instruments if readers else None
        if self.instruments is not None:
            # The SDK collects the observed families (gauges, runtime); the recorded ones join
            # each collection from `instruments` (telemetry/instruments.py).
            self.meter_provider = MeterProvider(metric_readers=readers, resource=resource)
            self.meter = self.meter_provider.get_meter(METER_NAME)
            runtime.observe(self.meter)

    def instrument_app(self, app: Starlette, metrics_token: str | None = None) -> None:
        """HTTP families for every request, server spans for those not excluded (the scrapes,
        probes and docs pages by default), and GET /metrics."""
        if self.instruments is not None or self.tracer_provider is not None:
            record = self.instruments.http_request if self.instruments else _ignore
            tracer = self.tracer if self.tracer_provider else None
            excluded = self.config.excluded_urls_pattern
            app.add_middleware(HttpTelemetry, record=record, tracer=tracer, excluded=excluded)
        # Always served, even with nothing to expose (push, none, SDK disabled): Prometheus
        # scrapes it for `up`, and HealthCheckFailed must keep meaning "the API is down".
        exporter = "disabled" if self.config.disabled else self.config.metrics_exporter
        render = self.pull_reader.render if self.pull_reader is not None else None
        hold_s = self.config.new_series_hold_s
        endpoint = exporters.MetricsEndpoint(render, exporter, metrics_token, hold_s)
        app.add_route("/metrics", endpoint.handle, methods=["GET"], include_in_schema=False)

    def observe_db_pool(self, engine: Engine) -> None:
        if self.meter is not None:
            size, most = db.pool_readers(engine)
            observe(self.meter, catalog.DB_POOL_SIZE, size)
            observe(self.meter, catalog.DB_POOL_MAX, most)
        if self.tracer_provider is not None:
            db.trace_sql(engine, self.tracer_provider)

    def observe_active_sessions(self, count: Callable[[], float | None]) -> None:
        if self.meter is not None:
            observe(self.meter, catalog.ACTIVE_SESSIONS, count)

    def prime(
        self,
        provider: str,
        model: str,
        workflow_types: Iterable[str],
        routes: Iterable[BaseRoute] = (),
    ) -> None:
        """Every label set known at start-up exists at zero before its first observation: a
        first rate limit or a workflow type that runs once after a restart would otherwise be
        invisible to increase() (telemetry/series_start.py)."""
        if self.instruments is not None:
            self.instruments.prime(provider, model, workflow_types, route_label_sets(routes))

    def record_llm_attempt(self, provider: str, model: str, outcome: str, seconds: float) -> None:
        if self.instruments is not None:
            self.instruments.llm_attempt(provider, model, outcome, seconds)

    def record_workflow_finished(self, workflow_type: str, status: str, seconds: float) -> None:
        if self.instruments is not None:
            self.instruments.workflow_finished(workflow_type, status, seconds)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Flush and stop exporters (push mode sends its last data here; a pull-mode worker
        publishes its last counts for the others to serve)."""
        if self.workers is not None:
            self.workers.stop()
        if self.meter_provider is not None:
            self.meter_provider.shutdown(timeout_millis=timeout_s * 1000)
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()


def _ignore(*_args: object) -> None:
    return None


def _exemplars(config: TelemetryConfig) -> ExemplarFilter:
    return EXEMPLAR_FILTERS[config.exemplar_filter_name]()


def _pull_transform(series_start: SeriesStart, workers: WorkerMetrics | None) -> NotedTransform:
    # Several workers: the hold (and its comment) applies to the merge, where each series
    # starts at its first creation in any worker.
    if workers is None:
        return series_start.apply_noted
    return lambda data: series_start.apply_noted(workers.merged(data))


def _push_transform(series_start: SeriesStart, instruments: Instruments) -> exporters.Transform:
    return lambda data: series_start.apply(instruments.collect(data))


def _worker_metrics(directory: Path) -> WorkerMetrics:
    """One line and exit 2 when the shared directory is not this server's alone (a bare
    `uvicorn --workers`; `testboost serve` checks it before starting the workers)."""
    try:
        return WorkerMetrics(directory)
    except MetricsDirError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None


def _instance_id(config: TelemetryConfig) -> str:
    """Worker slots are claimed (files in the temp dir) only when something is exported over
    OTLP, where the id becomes a label; a pull-only process writes nothing there."""
    if config.disabled or "otlp" not in (config.metrics_exporter, config.traces_exporter):
        return f"{socket.gethostname()}/pid{os.getpid()}"
    return instance.instance_id(config.service_name)


def setup(config: TelemetryConfig | None = None) -> Telemetry:
    """Build telemetry from `config` (default: the OTEL_* environment)."""
    config = config or TelemetryConfig.from_env()
    resource = Resource.create(
        {
            "service.name": config.service_name,
            # One id per process, stable across restarts (telemetry/instance.py): in push mode
            # each worker is its own series, and sums add up.
            "service.instance.id": _instance_id(config),
            "process.pid": os.getpid(),
        }
    )
    readers: list[MetricReader] = []
    pull_reader: PrometheusTextReader | None = None
    workers: WorkerMetrics | None = None
    series_start = SeriesStart(config.new_series_hold_s)
    # Each bucket shows its newest exemplar until a newer one comes (telemetry/instruments.py).
    instruments = Instruments(METER_NAME, resource, _exemplars(config), keep_exemplars=True)
    if not config.disabled:
        if config.metrics_exporter == "prometheus":
            if config.metrics_dir:
                workers = _worker_metrics(Path(config.metrics_dir))
            pull_reader = exporters.prometheus_reader(
                instruments.collect, _pull_transform(series_start, workers)
            )
            readers.append(pull_reader)
        elif config.metrics_exporter == "otlp":
            readers.append(
                exporters.otlp_reader(config, _push_transform(series_start, instruments))
            )
    telemetry = Telemetry(
        config,
        readers,
        pull_reader,
        tracing.tracer_provider(config, resource),
        resource,
        instruments,
        workers,
    )
    if workers is not None and pull_reader is not None:
        workers.start(pull_reader.snapshot)
    log.info(
        "Telemetry: %s",
        "disabled (OTEL_SDK_DISABLED=true)"
        if config.disabled
        else f"metrics={config.metrics_exporter} traces={config.traces_exporter}",
    )
    return telemetry
