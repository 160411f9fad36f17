"""The standard OpenTelemetry variables we honour, parsed once. Invalid values stop start-up.

Endpoints, headers, timeouts and sampler settings (`OTEL_EXPORTER_OTLP_*`, `OTEL_TRACES_SAMPLER*`)
are read by the OpenTelemetry exporters and SDK themselves; this module only chooses.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"
OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
OTEL_METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
OTEL_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTEL_EXPORTER_OTLP_METRICS_PROTOCOL = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
OTEL_METRIC_EXPORT_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"
OTEL_METRICS_EXEMPLAR_FILTER = "OTEL_METRICS_EXEMPLAR_FILTER"
# The OpenTelemetry Python instrumentations' convention: requests whose URL matches one of these
# comma-separated regular expressions get no span; the FastAPI-specific variable wins.
OTEL_PYTHON_FASTAPI_EXCLUDED_URLS = "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"
OTEL_PYTHON_EXCLUDED_URLS = "OTEL_PYTHON_EXCLUDED_URLS"
# Ours: the directory pull-mode workers share (telemetry/multiprocess.py).
TESTBOOST_METRICS_DIR = "TESTBOOST_METRICS_DIR"

DEFAULT_SERVICE_NAME = "testboost-api"
METRICS_EXPORTERS = ("prometheus", "otlp", "none")
TRACES_EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("http/protobuf", "grpc")
EXEMPLAR_FILTERS = ("always_on", "always_off", "trace_based")
# Untraced unless the variables above say otherwise: Prometheus' scrapes, health probes and the
# API's own docs pages (with their assets) are not work anyone asked the API for, and a scrape
# every 15 s alone would be most of the traces.
DEFAULT_EXCLUDED_URLS = (
    "^/metrics$",
    "^/health$",
    "^/docs$",
    "^/docs/oauth2-redirect$",
    "^/redoc$",
    r"^/openapi\.json$",
    "^/static-offline-docs/",
)


class TelemetryConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TelemetryConfig:
    disabled: bool = False
    service_name: str = DEFAULT_SERVICE_NAME
    metrics_exporter: str = "prometheus"
    traces_exporter: str = "none"
    metrics_protocol: str = "http/protobuf"
    traces_protocol: str = "http/protobuf"
    # Push interval. Keep it equal to the scrape interval (15 s) so rates match both paths.
    export_interval_ms: int = 15_000
    # How long a new series shows zero before its observations (telemetry/series_start.py);
    # None: derived from the interval, see `new_series_hold_s`. Tests reading /metrics at once
    # set 0.
    new_series_hold_ms: int | None = None
    # Pull mode with several workers: where they publish their collections; None: one process.
    metrics_dir: str | None = None
    # One of EXEMPLAR_FILTERS; None: `exemplar_filter_name` chooses.
    exemplar_filter: str | None = None
    # Regular expressions searched in a request's path (`re.search`): a match, no span.
    excluded_urls: tuple[str, ...] = DEFAULT_EXCLUDED_URLS

    @property
    def push(self) -> bool:
        return not self.disabled and self.metrics_exporter == "otlp"

    @property
    def new_series_hold_s(self) -> float:
        """Long enough for every scraper to record a new series' zero first. Pull: twice the
        scrape interval (one interval, plus margin for a late scrape). Push: the zero must
        also survive in the collector's exporter until Prometheus scrapes it there, one
        export interval later: three intervals."""
        if self.new_series_hold_ms is not None:
            return self.new_series_hold_ms / 1000
        return self.export_interval_ms / 1000 * (3 if self.push else 2)

    @property
    def exemplar_filter_name(self) -> str:
        """Exemplars only where they link to something: with traces, a sampled span's
        (OTLP carries them in push mode, the OpenMetrics scrape in pull mode); without traces
        there is no span to link, and the trace-based filter would cost a context lookup per
        record for nothing. With metrics off, no exemplar can leave either."""
        if self.exemplar_filter is not None:
            return self.exemplar_filter
        exported = not self.disabled and self.metrics_exporter in ("prometheus", "otlp")
        return "trace_based" if exported and self.traces_exporter != "none" else "always_off"

    @property
    def excluded_urls_pattern(self) -> re.Pattern[str] | None:
        """The excluded URLs as one expression, as the instrumentations join them."""
        return re.compile("|".join(self.excluded_urls)) if self.excluded_urls else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TelemetryConfig:
        env = os.environ if env is None else env

        def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = env.get(name, "").strip().lower() or default
            if value not in allowed:
                expected = ", ".join(allowed)
                raise TelemetryConfigError(f"{name}={value!r}: expected one of {expected}")
            return value

        disabled = choice(OTEL_SDK_DISABLED, ("true", "false"), "false") == "true"
        protocol = choice(OTEL_EXPORTER_OTLP_PROTOCOL, PROTOCOLS, "http/protobuf")
        interval = env.get(OTEL_METRIC_EXPORT_INTERVAL, "").strip() or "15000"
        if not interval.isdigit() or int(interval) < 100:
            raise TelemetryConfigError(
                f"{OTEL_METRIC_EXPORT_INTERVAL}={interval!r}: expected milliseconds >= 100"
            )
        return cls(
            disabled=disabled,
            service_name=env.get(OTEL_SERVICE_NAME, "").strip() or DEFAULT_SERVICE_NAME,
            metrics_exporter=choice(OTEL_METRICS_EXPORTER, METRICS_EXPORTERS, "prometheus"),
            traces_exporter=choice(OTEL_TRACES_EXPORTER, TRACES_EXPORTERS, "none"),
            metrics_protocol=choice(OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, PROTOCOLS, protocol),
            traces_protocol=choice(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, PROTOCOLS, protocol),
            export_interval_ms=int(interval),
            metrics_dir=env.get(TESTBOOST_METRICS_DIR, "").strip() or None,
            exemplar_filter=(
                choice(OTEL_METRICS_EXEMPLAR_FILTER, EXEMPLAR_FILTERS, "trace_based")
                if env.get(OTEL_METRICS_EXEMPLAR_FILTER, "").strip()
                else None
            ),
            excluded_urls=_excluded_urls(env),
        )


def _excluded_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    """The first of the two variables that is set, even empty (then every path is traced), as
    the instrumentations read them; unset: our defaults."""
    for name in (OTEL_PYTHON_FASTAPI_EXCLUDED_URLS, OTEL_PYTHON_EXCLUDED_URLS):
        if name in env:
            patterns = tuple(p.strip() for p in env[name].split(",") if p.strip())
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise TelemetryConfigError(
                        f"{name}: {pattern!r} is not a regular expression ({exc})"
                    ) from None
            return patterns
    return DEFAULT_EXCLUDED_URLS
