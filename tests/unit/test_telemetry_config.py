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


@pytest.mark.parametrize(
    "env,variable",
    [
        ({"OTEL_METRICS_EXPORTER": "statsd"}, "OTEL_METRICS_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "OTEL_METRIC_EXPORT_INTERVAL"),
        ({"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED"),
    ],
)
def test_invalid_values(env: dict[str, str], variable: str) -> None:
    with pytest.raises(TelemetryConfigError, match=variable):
        TelemetryConfig.from_env(env)
