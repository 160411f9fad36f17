"""OTEL_* variables choose exporters; bad values are refused with the variable named."""

from __future__ import annotations

import pytest

from telemetry.config import TelemetryConfig, TelemetryConfigError


def test_defaults_are_pull_without_traces() -> None:
    config = TelemetryConfig.from_env({})
    assert (config.metrics_exporter, config.traces_exporter) == ("prometheus", "none")
    assert config.service_name == "testboost-api" and not config.disabled and not config.push
    assert config.export_interval_ms == 15_000


def test_push_grpc_and_per_signal_protocol() -> None:
    config = TelemetryConfig.from_env(
        {
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_SERVICE_NAME": "tb",
        }
    )
    assert config.push and config.metrics_protocol == "grpc"
    assert config.traces_protocol == "http/protobuf"
    assert config.export_interval_ms == 1000 and config.service_name == "tb"


def test_sdk_disabled() -> None:
    assert TelemetryConfig.from_env({"OTEL_SDK_DISABLED": "TRUE"}).disabled


def test_blank_means_unset_and_the_process_environment_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", " GRPC ")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "  ")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "")
    config = TelemetryConfig.from_env()
    assert (config.metrics_protocol, config.traces_protocol) == ("grpc", "grpc")
    assert config.service_name == "testboost-api" and config.export_interval_ms == 15_000


@pytest.mark.parametrize(
    "env,variable",
    [
        ({"OTEL_METRICS_EXPORTER": "statsd"}, "OTEL_METRICS_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "OTEL_METRIC_EXPORT_INTERVAL"),
        ({"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "99"}, "OTEL_METRIC_EXPORT_INTERVAL"),
        # Whole milliseconds as digits: no sign, separator or fraction.
        ({"OTEL_METRIC_EXPORT_INTERVAL": "+100"}, "OTEL_METRIC_EXPORT_INTERVAL"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "1_000"}, "OTEL_METRIC_EXPORT_INTERVAL"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "1000.0"}, "OTEL_METRIC_EXPORT_INTERVAL"),
    ],
)
def test_invalid_values(env: dict[str, str], variable: str) -> None:
    with pytest.raises(TelemetryConfigError, match=variable):
        TelemetryConfig.from_env(env)


def test_scrapes_probes_and_docs_are_excluded_from_traces_by_default() -> None:
    pattern = TelemetryConfig.from_env({}).excluded_urls_pattern
    assert pattern is not None
    for path in ("/metrics", "/health", "/docs", "/docs/oauth2-redirect", "/redoc"):
        assert pattern.search(path), path
    assert pattern.search("/openapi.json") and pattern.search("/static-offline-docs/x.css")
    for path in ("/api/v2/sessions", "/api/v2/sessions/docs", "/metrics/x", "/openapi_json"):
        assert not pattern.search(path), path


@pytest.mark.parametrize(
    "env,excluded",
    [
        ({"OTEL_PYTHON_EXCLUDED_URLS": "^/metrics$, health ,"}, ("^/metrics$", "health")),
        (
            {"OTEL_PYTHON_EXCLUDED_URLS": "health", "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "docs"},
            ("docs",),  # the instrumentation-specific variable wins, as upstream
        ),
        ({"OTEL_PYTHON_EXCLUDED_URLS": ""}, ()),  # set but empty: every path is traced
    ],
)
def test_excluded_urls_follow_the_instrumentations_variables(
    env: dict[str, str], excluded: tuple[str, ...]
) -> None:
    config = TelemetryConfig.from_env(env)
    assert config.excluded_urls == excluded
    assert (config.excluded_urls_pattern is None) is (excluded == ())


def test_an_excluded_url_that_is_no_regular_expression_stops_start_up() -> None:
    with pytest.raises(TelemetryConfigError, match=r"OTEL_PYTHON_EXCLUDED_URLS=.*'\(' is not"):
        TelemetryConfig.from_env({"OTEL_PYTHON_EXCLUDED_URLS": "/ok,("})
