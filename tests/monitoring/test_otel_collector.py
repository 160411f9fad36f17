"""Structure of otel-collector/config.yaml. No otelcol-contrib binary can be had where these
tests run, so this checks what the collector would refuse or silently ignore: components used
but undefined, defined but unused, processor order, and ports that disagree with compose."""

from __future__ import annotations

import yaml

from .tools import REPO

CONFIG = yaml.safe_load((REPO / "otel-collector" / "config.yaml").read_text())
PIPELINES = CONFIG["service"]["pipelines"]
KINDS = ("receivers", "processors", "exporters")


def test_pipelines_reference_only_defined_components() -> None:
    for name, pipeline in PIPELINES.items():
        for kind in KINDS:
            for component in pipeline.get(kind, []):
                assert component in CONFIG[kind], f"{name}: {kind[:-1]} {component} undefined"


def test_every_defined_component_is_used() -> None:
    for kind in KINDS:
        used = {c for pipeline in PIPELINES.values() for c in pipeline.get(kind, [])}
        assert set(CONFIG[kind]) == used, kind
    assert set(CONFIG.get("extensions", {})) == set(CONFIG["service"].get("extensions", []))


def test_memory_limiter_first_and_batch_in_every_pipeline() -> None:
    for name, pipeline in PIPELINES.items():
        assert pipeline["processors"][0] == "memory_limiter", name
        assert "batch" in pipeline["processors"], name


def test_metrics_go_to_prometheus_remote_write_without_resource_labels() -> None:
    assert PIPELINES["metrics"]["receivers"] == ["otlp"]
    assert PIPELINES["metrics"]["exporters"] == ["prometheusremotewrite"]
    exporter = CONFIG["exporters"]["prometheusremotewrite"]
    assert exporter["endpoint"] == "http://prometheus:9090/api/v1/write"
    assert exporter["resource_to_telemetry_conversion"] == {"enabled": False}
    # The otel overlay turns on the receiver this endpoint needs.
    otel = yaml.safe_load((REPO / "compose" / "docker-compose.otel.yaml").read_text())
    assert "--web.enable-remote-write-receiver" in otel["services"]["prometheus"]["command"]


def test_traces_have_a_backend_and_the_debug_fallback() -> None:
    exporters = PIPELINES["traces"]["exporters"]
    assert "debug" in exporters
    (backend,) = [e for e in exporters if e.split("/")[0] == "otlp"]
    assert CONFIG["exporters"][backend]["endpoint"].endswith(":4317")


def test_receiver_ports_agree_with_compose() -> None:
    protocols = CONFIG["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    otel = yaml.safe_load((REPO / "compose" / "docker-compose.otel.yaml").read_text())
    collector = otel["services"]["otel-collector"]
    published = {port.split(":")[1] for port in collector["ports"]}
    assert published == {"4317", "4318"}
    endpoint = otel["services"]["testboost-api"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint == "http://otel-collector:4318"  # OTLP/HTTP, the protocol the API uses
    config_mount = collector["volumes"][0].split(":")[1]
    assert collector["command"] == [f"--config={config_mount}"]


def test_the_config_says_what_was_not_run() -> None:
    head = (REPO / "otel-collector" / "config.yaml").read_text().split("receivers:")[0]
    assert "NOT been loaded by otelcol-contrib" in head
