"""Our own collector (.tools/bin/otelcol, from otel-collector/builder-config.yaml) and Jaeger v2
(.tools/bin/jaeger, from tools/jaeger/go.mod), both built by scripts/build-go-tools.sh
(`make tools`), loading the shipped configs and running for real on free loopback ports.
A missing binary fails with "run `make tools`" (tools.tool_path), never skips."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from devstack.processes import free_port
from tests.support.exposition import Exposition
from tests.support.waiting import until

from .tools import REPO, run_tool, tool_path

CONFIGS = REPO / "otel-collector"
MANIFEST: dict[str, Any] = yaml.safe_load((CONFIGS / "builder-config.yaml").read_text())
KINDS = ("receivers", "processors", "exporters", "extensions", "providers")

# Core modules at one release (stable ones such as the confmap providers at its 1.x twin),
# contrib at its matching patch release.
CORE, CORE_STABLE, CONTRIB = "v0.165.0", "v1.71.0", "v0.165.1"


def test_manifest_pins_every_component_to_one_release() -> None:
    for kind in KINDS:
        for entry in MANIFEST[kind]:
            module, version = entry["gomod"].split()
            if module.startswith("go.opentelemetry.io/collector/confmap/"):
                assert version == CORE_STABLE, module
            elif module.startswith("go.opentelemetry.io/collector/"):
                assert version == CORE, module
            else:
                assert module.startswith(
                    "github.com/open-telemetry/opentelemetry-collector-contrib/"
                )
                assert version == CONTRIB, module


@pytest.mark.tools
def test_the_binary_has_exactly_the_manifests_components() -> None:
    result = run_tool("otelcol", "components")
    assert result.returncode == 0, result.stderr
    listed = yaml.safe_load(result.stdout)
    assert listed["buildinfo"]["command"] == MANIFEST["dist"]["name"]
    for kind in KINDS:
        built = sorted(component["module"] for component in listed[kind] or [])
        assert built == sorted(entry["gomod"] for entry in MANIFEST[kind]), kind
    assert not listed["connectors"]


CONFIG_SETS = {
    "config.yaml": ["config.yaml"],
    "config.yaml + remote-write.yaml": ["config.yaml", "remote-write.yaml"],
}


@pytest.mark.tools
@pytest.mark.parametrize("files", CONFIG_SETS.values(), ids=CONFIG_SETS.keys())
def test_shipped_configs_validate(files: list[str]) -> None:
    result = run_tool("otelcol", "validate", *(f"--config={CONFIGS / name}" for name in files))
    assert result.returncode == 0, result.stderr


def resolved(*files: str) -> dict[str, Any]:
    result = run_tool("otelcol", "print-config", *(f"--config={CONFIGS / n}" for n in files))
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.mark.tools
def test_remote_write_overlay_swaps_only_the_metrics_exporter() -> None:
    base = resolved("config.yaml")
    merged = resolved("config.yaml", "remote-write.yaml")
    assert base["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus"]
    assert merged["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus_remote_write"]
    del base["service"]["pipelines"]["metrics"]["exporters"]
    del merged["service"]["pipelines"]["metrics"]["exporters"]
    assert merged == base


@pytest.mark.tools
def test_jaeger_config_validates() -> None:
    result = run_tool("jaeger", "validate", f"--config={CONFIGS / 'jaeger.yaml'}")
    assert result.returncode == 0, result.stderr


@contextmanager
def running(name: str, args: list[str], env: dict[str, str]) -> Iterator[Path]:
    """`name` from .tools/bin as a process with `env` added; yields its log file."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [tool_path(name), *args],
                env={**os.environ, **env},
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            yield log
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def answers(url: str, **params: str) -> httpx.Response | None:
    try:
        response = httpx.get(url, params=params, timeout=2)
    except httpx.TransportError:
        return None
    return response if response.status_code == 200 else None


def wait_healthy(url: str, log: Path) -> None:
    try:
        until(lambda: answers(url), timeout=30, interval=0.1, message=url)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None


@contextmanager
def jaeger() -> Iterator[dict[str, str]]:
    ports = {
        name: f"127.0.0.1:{free_port()}"
        for name in ("OTLP_GRPC", "OTLP_HTTP", "QUERY_HTTP", "QUERY_GRPC", "HEALTH")
    }
    env = {f"JAEGER_{name}_ENDPOINT": address for name, address in ports.items()}
    env["JAEGER_TELEMETRY_LEVEL"] = "none"  # no :8888 to clash on
    with running("jaeger", [f"--config={CONFIGS / 'jaeger.yaml'}"], env) as log:
        wait_healthy(f"http://{ports['HEALTH']}/status", log)
        yield ports


@pytest.mark.tools
def test_jaeger_starts_on_free_ports_and_answers_queries() -> None:
    with jaeger() as ports:
        services = answers(f"http://{ports['QUERY_HTTP']}/api/services")
        assert services is not None
        assert services.json()["data"] in ([], None)


@pytest.mark.tools
def test_metric_and_span_through_the_collector() -> None:
    """config.yaml end to end: OTLP/HTTP in; the metric on the prometheus exporter's page
    under its Prometheus name with job/instance from the resource; the span in Jaeger."""
    collector = {
        name: f"127.0.0.1:{free_port()}"
        for name in ("OTLP_GRPC", "OTLP_HTTP", "PROMETHEUS", "HEALTH", "TELEMETRY")
    }
    with jaeger() as jaeger_ports:
        env = {
            "OTELCOL_OTLP_GRPC_ENDPOINT": collector["OTLP_GRPC"],
            "OTELCOL_OTLP_HTTP_ENDPOINT": collector["OTLP_HTTP"],
            "OTELCOL_PROMETHEUS_ENDPOINT": collector["PROMETHEUS"],
            "OTELCOL_HEALTH_ENDPOINT": collector["HEALTH"],
            "OTELCOL_TRACES_ENDPOINT": jaeger_ports["OTLP_GRPC"],
            "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
            "OTELCOL_TELEMETRY_PORT": collector["TELEMETRY"].rsplit(":", 1)[1],
        }
        args = [f"--config={CONFIGS / 'config.yaml'}"]
        with running("otelcol", args, env) as log:
            wait_healthy(f"http://{collector['HEALTH']}/status", log)
            trace_id = push(f"http://{collector['OTLP_HTTP']}")

            def page() -> Exposition | None:
                response = answers(f"http://{collector['PROMETHEUS']}/metrics")
                exposition = Exposition(response.text) if response else None
                return exposition if exposition and exposition.series(COUNTER) else None

            exposition = until(page, timeout=15, interval=0.2, message=COUNTER)
            assert exposition is not None
            (sample,) = exposition.series(COUNTER)
            assert sample.value == 3
            assert sample.labels["job"] == "testboost-api"  # service.name
            assert sample.labels["instance"] == "probe-1"  # service.instance.id
            assert sample.labels["route"] == "/probe"
            # Other resource attributes only on target_info, not on every series.
            assert "deployment_environment" not in sample.labels
            (info,) = exposition.series("target_info")
            assert info.labels["deployment_environment"] == "test"
            assert exposition.value(
                "testboost_build_probe_duration_seconds_count", job="testboost-api"
            )

            # Asked as Prometheus asks (OpenMetrics first): the same series, and the
            # histogram recorded under the span links to its trace.
            scraped = httpx.get(
                f"http://{collector['PROMETHEUS']}/metrics",
                headers={"Accept": OPENMETRICS_FIRST},
                timeout=5,
            )
            assert scraped.headers["content-type"].startswith("application/openmetrics-text")
            families = list(openmetrics_families(scraped.text))  # strict: # EOF, _total, 128
            linked = {
                s.exemplar.labels["trace_id"]
                for family in families
                for s in family.samples
                if s.name == "testboost_build_probe_duration_seconds_bucket" and s.exemplar
            }
            assert linked == {trace_id}
            samples = {s.name for family in families for s in family.samples}
            assert {COUNTER, "testboost_build_probe_duration_seconds_count"} <= samples

            own = answers(f"http://{collector['TELEMETRY']}/metrics")
            assert own is not None and "otelcol_receiver_accepted_metric_points" in own.text

            def trace() -> list[Any] | None:
                found = answers(
                    f"http://{jaeger_ports['QUERY_HTTP']}/api/traces", service="testboost-api"
                )
                data = found.json()["data"] if found else None
                return [t for t in data or [] if t["traceID"] == trace_id] or None

            traces = until(trace, timeout=15, interval=0.2, message=f"trace {trace_id}")
            assert traces is not None
            (found,) = traces
            assert [span["operationName"] for span in found["spans"]] == ["probe-span"]


COUNTER = "testboost_build_probe_total"
# Prometheus 2.53's default Accept header (3.5's also lists OpenMetrics first).
OPENMETRICS_FIRST = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
    "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


def push(endpoint: str) -> str:
    """One counter, one histogram and one span as the API would send them; the trace id."""
    resource = Resource.create(
        {
            "service.name": "testboost-api",
            "service.instance.id": "probe-1",
            "deployment.environment": "test",
        }
    )
    exporter = OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meters.get_meter("testboost.build-probe")
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
    )
    tracer = tracer_provider.get_tracer("testboost.build-probe")
    with tracer.start_as_current_span("probe-span") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        meter.create_counter("testboost_build_probe").add(3, {"route": "/probe"})
        # Under the sampled span: the SDK's trace-based filter keeps it as an exemplar.
        meter.create_histogram("testboost_build_probe_duration", unit="s").record(
            0.25, {"route": "/probe"}
        )
    meters.shutdown()  # exports once
    tracer_provider.shutdown()
    return trace_id
