"""telemetry/exposition.py: exact text on a fresh MeterProvider, and the same samples as the
exporter path it replaces (PrometheusMetricReader + prometheus_client's generate_latest)."""

from __future__ import annotations

import subprocess

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from telemetry import catalog
from telemetry.exposition import PrometheusTextReader, render
from telemetry.instruments import Instruments, observe
from tests.monitoring.tools import tool_path
from tests.unit.test_instruments import SdkInstruments


def fresh(**limits: int) -> tuple[PrometheusTextReader, MeterProvider]:
    reader = PrometheusTextReader(
        cardinality_limits={Counter: limits["counter"]} if limits else None
    )
    return reader, MeterProvider(metric_readers=[reader])


def recorded() -> tuple[PrometheusTextReader, MeterProvider, Instruments]:
    """A reader whose collections carry the API's recorded families, as setup() wires it."""
    instruments = Instruments("testboost", Resource.get_empty())
    reader = PrometheusTextReader(produce=instruments.collect)
    return reader, MeterProvider(metric_readers=[reader]), instruments


def test_exact_text() -> None:
    reader, provider = fresh()
    meter = provider.get_meter("test")
    requests = meter.create_counter("requests", description="Requests\\served\nso far.")
    requests.add(3, {"path": '/a"b', "method": "GET"})
    requests.add(1, {"path": "back\\slash\nnew", "method": "GET"})
    meter.create_counter("sent", unit="By").add(1_500_000, {"ok": True, "code": 7})
    latency = meter.create_histogram(
        "latency", unit="s", explicit_bucket_boundaries_advisory=[0.1, 1.0]
    )
    for seconds in (0.05, 0.5, 0.5, 3.0):
        latency.record(seconds, {"route": "/x"})
    meter.create_up_down_counter("queue").add(-2)

    def gauge(_options: CallbackOptions) -> list[Observation]:
        return [Observation(2.5)]

    meter.create_observable_gauge("temperature", [gauge], description="Now.")
    assert reader.render().decode() == (
        "# HELP requests_total Requests\\\\served\\nso far.\n"
        "# TYPE requests_total counter\n"
        'requests_total{method="GET",path="/a\\"b"} 3.0\n'
        'requests_total{method="GET",path="back\\\\slash\\nnew"} 1.0\n'
        "# HELP sent_bytes_total \n"
        "# TYPE sent_bytes_total counter\n"
        'sent_bytes_total{code="7",ok="true"} 1.5e+06\n'
        "# HELP latency_seconds \n"
        "# TYPE latency_seconds histogram\n"
        'latency_seconds_bucket{le="0.1",route="/x"} 1.0\n'
        'latency_seconds_bucket{le="1.0",route="/x"} 3.0\n'
        'latency_seconds_bucket{le="+Inf",route="/x"} 4.0\n'
        'latency_seconds_count{route="/x"} 4.0\n'
        'latency_seconds_sum{route="/x"} 4.05\n'
        "# HELP queue \n"
        "# TYPE queue gauge\n"
        "queue -2.0\n"
        "# HELP temperature Now.\n"
        "# TYPE temperature gauge\n"
        "temperature 2.5\n"
    )


def test_cardinality_overflow_is_one_labelled_series() -> None:
    reader, provider = fresh(counter=2)
    counter = provider.get_meter("test").create_counter("hits")
    for path in ("/a", "/b", "/c", "/d", "/c"):
        counter.add(1, {"path": path})
    assert reader.render().decode().splitlines()[2:] == [
        'hits_total{path="/a"} 1.0',
        'hits_total{path="/b"} 1.0',
        'hits_total{otel_metric_overflow="true"} 3.0',
    ]


def test_cached_series_show_new_values_and_new_series() -> None:
    reader, _provider, instruments = recorded()
    instruments.http_request("GET", "/x", "200", 0.2)
    first = reader.render().decode()
    assert reader.render().decode() == first  # nothing moved, same text
    instruments.http_request("GET", "/x", "200", 0.002)
    instruments.http_request("POST", "/y", "201", 0.002)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reader.render().decode())
        for s in family.samples
    }
    count = "testboost_http_request_duration_seconds_count"
    assert samples[(count, (("method", "GET"), ("path", "/x")))] == 2
    assert samples[(count, (("method", "POST"), ("path", "/y")))] == 1
    bucket = "testboost_http_request_duration_seconds_bucket"
    assert samples[(bucket, (("le", "0.005"), ("method", "GET"), ("path", "/x")))] == 1


def test_same_text_as_the_exporter_it_replaces() -> None:
    """Every family the app registers: the SDK's instruments on the exporter's path, ours on
    our renderer's, fed the same observations."""
    registry = CollectorRegistry(auto_describe=False)
    exporter = PrometheusMetricReader(
        disable_target_info=True, scope_info_enabled=False, registry=registry
    )
    sdk = SdkInstruments(MeterProvider(metric_readers=[exporter]).get_meter("testboost"))
    ours, provider, instruments = recorded()
    for record in (sdk, instruments):
        record.prime("openai", "gpt", ["test_generation", "impact_analysis"])
        for i in range(30):
            record.http_request("GET", f"/r/{i}", "200", i / 10)
        record.llm_attempt("openai", "gpt", "rate_limit", 0.3)
        record.workflow_finished("test_generation", "completed", 12.0)
    for meter in (sdk.meter, provider.get_meter("testboost")):
        observe(meter, catalog.ACTIVE_SESSIONS, lambda: 4.0)
        observe(meter, catalog.DB_POOL_SIZE, lambda: None)
    # Histogram series primed at zero: the SDK cannot show them until their first record.
    text = ours.render().decode().splitlines(keepends=True)
    reference = generate_latest(registry).decode().splitlines(keepends=True)
    unobserved = [
        line for line in text if "duration_seconds_" in line and "impact_analysis" in line
    ]
    assert unobserved and not [line for line in unobserved if line in reference]
    assert sorted(line for line in text if line not in unobserved) == sorted(reference)


def test_no_data_renders_empty() -> None:
    assert render(None) == ""
    reader, _provider = fresh()
    assert reader.render() == b""


@pytest.mark.tools
def test_promtool_accepts_it() -> None:
    reader, _provider, instruments = recorded()
    instruments.prime("openai", "gpt", ["test_generation"])
    instruments.http_request("GET", '/we"ird\\path', "200", 0.01)
    checked = subprocess.run(
        [tool_path("promtool"), "check", "metrics"],
        input=reader.render(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    # Lint findings (e.g. counters without HELP text) are fine; parse errors are not.
    assert b"error while linting" not in checked.stderr, checked.stderr
