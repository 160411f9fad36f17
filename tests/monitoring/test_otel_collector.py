"""otel-collector/config.yaml against the files it must agree with: compose's ports and
services, Prometheus' scrape job for it, the remote-write overlay. The collector itself loads
and runs this file in tests/monitoring/test_otel_build.py and the end-to-end tests; this
checks what a run would not show: defaults that only compose uses."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .tools import REPO

COLLECTOR = REPO / "otel-collector"
CONFIG: dict[str, Any] = yaml.safe_load((COLLECTOR / "config.yaml").read_text())
PIPELINES = CONFIG["service"]["pipelines"]
KINDS = ("receivers", "processors", "exporters")
OTEL = yaml.safe_load((REPO / "compose" / "docker-compose.otel.yaml").read_text())
SCRAPE_JOB = yaml.safe_load(
    (REPO / "monitoring/prometheus/scrape.d/otel-collector.yml").read_text()
)["scrape_configs"][0]


def default(value: str) -> str:
    """The compose default of a `${env:NAME:-default}` value."""
    match = re.fullmatch(r"\$\{env:[A-Z_]+:-(.+)\}", value)
    assert match, f"{value!r} is not ${{env:NAME:-default}}"
    return match.group(1)


def test_every_defined_component_is_used_but_the_remote_write_alternative() -> None:
    for kind in KINDS:
        used = {c for pipeline in PIPELINES.values() for c in pipeline.get(kind, [])}
        unused = set(CONFIG[kind]) - used
        assert unused == ({"prometheus_remote_write"} if kind == "exporters" else set()), kind
    assert set(CONFIG["extensions"]) == set(CONFIG["service"]["extensions"])


def test_memory_limiter_first_and_batch_in_every_pipeline() -> None:
    for name, pipeline in PIPELINES.items():
        assert pipeline["processors"][0] == "memory_limiter", name
        assert "batch" in pipeline["processors"], name


def test_metrics_page_is_what_prometheus_scrapes_with_the_apis_labels() -> None:
    assert PIPELINES["metrics"] == {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "batch"],
        "exporters": ["prometheus"],
    }
    exporter = CONFIG["exporters"]["prometheus"]
    port = default(exporter["endpoint"]).rsplit(":", 1)[1]
    assert SCRAPE_JOB["job_name"] == "otel-collector"
    assert SCRAPE_JOB["static_configs"][0]["targets"] == [f"otel-collector:{port}"]
    # job/instance come from the API's resource (service.name, service.instance.id).
    assert SCRAPE_JOB["honor_labels"] is True
    # No resource attribute becomes a label (they stay in target_info).
    assert exporter["resource_to_telemetry_conversion"] == {"enabled": False}
    # An idle series (a counter that stopped moving) must outlive the alert windows (1 h).
    assert exporter["metric_expiration"] == "60m"
    assert "namespace" not in exporter  # names are the catalog's, unprefixed


def test_remote_write_overlay_replaces_only_the_metrics_exporters() -> None:
    overlay = yaml.safe_load((COLLECTOR / "remote-write.yaml").read_text())
    assert overlay == {
        "service": {"pipelines": {"metrics": {"exporters": ["prometheus_remote_write"]}}}
    }
    exporter = CONFIG["exporters"]["prometheus_remote_write"]
    assert default(exporter["endpoint"]) == "http://prometheus:9090/api/v1/write"
    assert exporter["resource_to_telemetry_conversion"] == {"enabled": False}


def test_traces_go_to_jaeger() -> None:
    (exporter,) = PIPELINES["traces"]["exporters"]
    assert default(CONFIG["exporters"][exporter]["endpoint"]) == "jaeger:4317"
    jaeger = yaml.safe_load((COLLECTOR / "jaeger.yaml").read_text())
    grpc = jaeger["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert default(grpc).endswith(":4317")
    assert "jaeger" in OTEL["services"]


def test_ports_agree_with_compose() -> None:
    protocols = CONFIG["receivers"]["otlp"]["protocols"]
    listened = {
        default(protocols["grpc"]["endpoint"]),
        default(protocols["http"]["endpoint"]),
        default(CONFIG["exporters"]["prometheus"]["endpoint"]),
        default(CONFIG["extensions"]["healthcheckv2"]["http"]["endpoint"]),
    }
    collector = OTEL["services"]["otel-collector"]
    published = {f"0.0.0.0:{port.split(':')[1].split()[0]}" for port in collector["ports"]}
    assert published == listened
    endpoint = OTEL["services"]["testboost-api"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint == "http://otel-collector:4318"  # OTLP/HTTP, the protocol the API uses
    config_mount = collector["volumes"][0].split(":")[1]
    assert collector["command"] == [f"--config={config_mount}"]


def test_its_own_metrics_are_scraped_where_the_config_serves_them() -> None:
    """service.telemetry's reader (port 8888, counters with _total) is the target of the
    otel-collector-telemetry job, in a scrape file of its own (mounted wherever a collector
    runs, remote write and traces only included)."""
    (reader,) = CONFIG["service"]["telemetry"]["metrics"]["readers"]
    exporter = reader["pull"]["exporter"]["prometheus"]
    assert exporter["without_type_suffix"] is False
    (job,) = yaml.safe_load(
        (REPO / "monitoring/prometheus/scrape.d/otel-collector-telemetry.yml").read_text()
    )["scrape_configs"]
    assert job["job_name"] == "otel-collector-telemetry"
    assert job["static_configs"] == [{"targets": [f"otel-collector:{default(exporter['port'])}"]}]
    assert "honor_labels" not in job
