"""The standard OpenTelemetry variables we honour, read once by pydantic-settings (as
app/core/config.py reads `TESTBOOST_*`) into `TelemetryEnvironment`; `TelemetryConfig` is what
`telemetry.setup()` builds from them. Invalid values stop start-up.

Endpoints, headers, timeouts and sampler settings (`OTEL_EXPORTER_OTLP_*`, `OTEL_TRACES_SAMPLER*`)
are read by the OpenTelemetry exporters and SDK themselves; this module only chooses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BeforeValidator, ValidationError
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from telemetry.catalog import API_JOB

DEFAULT_SERVICE_NAME = API_JOB  # the collector turns service.name into the job label
# Ours: the directory pull-mode workers share (telemetry/multiprocess.py).
TESTBOOST_METRICS_DIR = "TESTBOOST_METRICS_DIR"
# Untraced unless the variables say otherwise: Prometheus' scrapes, health probes and the API's
# own docs pages (with their assets) are not work anyone asked the API for, and the scrapes
# alone would be most of the traces.
DEFAULT_EXCLUDED_URLS = (
    "^/$",  # leads to /docs
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


def _stripped(value: object) -> object:
    """Surrounding spaces never matter, and a variable set empty counts as unset."""
    if isinstance(value, str) and not (value := value.strip()):
        raise PydanticUseDefault
    return value


def _patterns(value: object) -> object:
    """Comma-separated regular expressions, as the instrumentations split them; set empty:
    none (every path is traced)."""
    if not isinstance(value, str):
        return value
    patterns = tuple(p.strip() for p in value.split(",") if p.strip())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
    return patterns


def _milliseconds(value: object) -> object:
    """Whole milliseconds, written as digits only (no sign, `_` or decimal point)."""
    if isinstance(value, str) and not (value.isdigit() and int(value) >= 100):
        raise ValueError("expected milliseconds >= 100")
    return value


Protocol = Literal["http/protobuf", "grpc"]
ExemplarFilterName = Literal["always_on", "always_off", "trace_based"]
Stripped = BeforeValidator(_stripped)
Choice = BeforeValidator(lambda v: _stripped(v.lower() if isinstance(v, str) else v))
Patterns = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_patterns)]


class TelemetryEnvironment(BaseSettings):
    """The variables as set: each field is named after its variable."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    OTEL_SDK_DISABLED: Annotated[Literal["true", "false"], Choice] = "false"
    OTEL_SERVICE_NAME: Annotated[str, Stripped] = DEFAULT_SERVICE_NAME
    OTEL_METRICS_EXPORTER: Annotated[Literal["prometheus", "otlp", "none"], Choice] = "prometheus"
    OTEL_TRACES_EXPORTER: Annotated[Literal["otlp", "console", "none"], Choice] = "none"
    OTEL_EXPORTER_OTLP_PROTOCOL: Annotated[Protocol, Choice] = "http/protobuf"
    # Per signal; unset: the one above.
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: Annotated[Protocol | None, Choice] = None
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: Annotated[Protocol | None, Choice] = None
    OTEL_METRIC_EXPORT_INTERVAL: Annotated[int, BeforeValidator(_milliseconds), Stripped] = 15_000
    OTEL_METRICS_EXEMPLAR_FILTER: Annotated[ExemplarFilterName | None, Choice] = None
    # The OpenTelemetry Python instrumentations' convention: requests whose URL matches one of
    # these get no span. The first one set wins, even set empty.
    OTEL_PYTHON_FASTAPI_EXCLUDED_URLS: Annotated[Patterns | None, NoDecode] = None
    OTEL_PYTHON_EXCLUDED_URLS: Patterns = DEFAULT_EXCLUDED_URLS
    TESTBOOST_METRICS_DIR: Annotated[str | None, Stripped] = None


@dataclass(frozen=True)
class TelemetryConfig:
    """The choices made: `from_env()` in a process, keywords in tests."""

    disabled: bool = False
    service_name: str = DEFAULT_SERVICE_NAME
    metrics_exporter: str = "prometheus"
    traces_exporter: str = "none"
    metrics_protocol: str = "http/protobuf"
    traces_protocol: str = "http/protobuf"
    # Push interval. Keep it equal to the scrape interval so rates match both paths.
    export_interval_ms: int = 15_000
    # How long a new series shows zero before its observations (telemetry/series_start.py);
    # None: derived from the interval, see `new_series_hold_s`. Tests reading /metrics at once
    # set 0.
    new_series_hold_ms: int | None = None
    # Pull mode with several workers: where they publish their collections; None: one process.
    metrics_dir: str | None = None
    # always_on, always_off or trace_based; None: `exemplar_filter_name` chooses.
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
        """From the process' environment, or from `env` alone when given."""
        try:
            v = TelemetryEnvironment() if env is None else TelemetryEnvironment.model_validate(env)
        except ValidationError as exc:
            problems = (
                f"{e['loc'][0]}={e['input']!r}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise TelemetryConfigError("; ".join(problems)) from None
        excluded = v.OTEL_PYTHON_FASTAPI_EXCLUDED_URLS
        return cls(
            disabled=v.OTEL_SDK_DISABLED == "true",
            service_name=v.OTEL_SERVICE_NAME,
            metrics_exporter=v.OTEL_METRICS_EXPORTER,
            traces_exporter=v.OTEL_TRACES_EXPORTER,
            metrics_protocol=v.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL or v.OTEL_EXPORTER_OTLP_PROTOCOL,
            traces_protocol=v.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or v.OTEL_EXPORTER_OTLP_PROTOCOL,
            export_interval_ms=v.OTEL_METRIC_EXPORT_INTERVAL,
            metrics_dir=v.TESTBOOST_METRICS_DIR,
            exemplar_filter=v.OTEL_METRICS_EXEMPLAR_FILTER,
            excluded_urls=v.OTEL_PYTHON_EXCLUDED_URLS if excluded is None else excluded,
        )
