"""telemetry/series_start.py on a real MeterProvider: primed histogram series are there at zero
before their first observation; a series nobody primed shows zero for the hold, then its
observations; gauges and settled collections pass untouched."""

from __future__ import annotations

import time

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider

from telemetry.catalog import BY_NAME
from telemetry.exposition import PrometheusTextReader, render
from telemetry.series_start import SeriesStart
from tests.support.exposition import Exposition

WORKFLOW = BY_NAME["testboost_workflow_duration_seconds"]
HOLD_S = 30.0


def fresh(series_start: SeriesStart) -> tuple[PrometheusTextReader, MeterProvider]:
    reader = PrometheusTextReader(transform=series_start.apply)
    return reader, MeterProvider(metric_readers=[reader])


def scrape(reader: PrometheusTextReader) -> Exposition:
    return Exposition(reader.render().decode())


def test_primed_histogram_is_zero_before_any_observation() -> None:
    start = SeriesStart("testboost", hold_s=0)
    start.prime(WORKFLOW, [("analysis",), ("generation",)])
    reader, _provider = fresh(start)
    exposition = scrape(reader)
    name = "testboost_workflow_duration_seconds"
    assert exposition.types[name] == "histogram"
    for workflow_type in ("analysis", "generation"):
        assert len(exposition.series(f"{name}_count")) == 2
        assert exposition.value(f"{name}_count", workflow_type=workflow_type) == 0
        assert exposition.value(f"{name}_sum", workflow_type=workflow_type) == 0
        assert exposition.value(f"{name}_bucket", workflow_type=workflow_type, le="+Inf") == 0
    assert len(exposition.series(f"{name}_bucket")) == 2 * (len(WORKFLOW.buckets) + 1)


def test_primed_series_gives_way_to_the_real_one() -> None:
    start = SeriesStart("testboost", hold_s=0)
    start.prime(WORKFLOW, [("analysis",), ("generation",)])
    reader, provider = fresh(start)
    histogram = provider.get_meter("testboost").create_histogram(
        WORKFLOW.otel_name, unit="s", explicit_bucket_boundaries_advisory=WORKFLOW.buckets
    )
    histogram.record(42.0, {"workflow_type": "analysis"})
    exposition = scrape(reader)
    name = "testboost_workflow_duration_seconds"
    assert exposition.value(f"{name}_count", workflow_type="analysis") == 1
    assert exposition.value(f"{name}_sum", workflow_type="analysis") == 42.0
    assert exposition.value(f"{name}_count", workflow_type="generation") == 0
    assert len(exposition.series(f"{name}_count")) == 2
    # One family: the primed points join the real metric.
    assert exposition.text.count(f"# TYPE {name} ") == 1


def test_primed_metrics_join_the_collections_own_scope() -> None:
    """One scope per name: an OTLP receiver may keep only one of two scopes of a name (vmagent
    dropped every counter when the primed histograms came in a second "testboost" scope)."""
    start = SeriesStart("testboost", hold_s=0)
    start.prime(WORKFLOW, [("analysis",)])
    reader, provider = fresh(start)
    provider.get_meter("testboost").create_counter("requests").add(1)
    data = start.apply(reader.snapshot())
    assert data is not None
    scopes = [sm for rm in data.resource_metrics for sm in rm.scope_metrics]
    assert [sm.scope.name for sm in scopes] == ["testboost"]
    assert {m.name for m in scopes[0].metrics} == {"requests", WORKFLOW.otel_name}


def test_a_new_series_shows_zero_for_the_hold_then_its_value() -> None:
    start = SeriesStart("testboost", hold_s=HOLD_S)
    reader, provider = fresh(start)
    meter = provider.get_meter("testboost")
    requests = meter.create_counter("requests")
    latency = meter.create_histogram("latency", unit="s", explicit_bucket_boundaries_advisory=[1.0])
    requests.add(3, {"status": "404"})
    latency.record(0.5, {"path": "/x"})
    created = time.time_ns()

    def at(seconds_later: float) -> Exposition:
        data = start.apply(reader.snapshot(), now_ns=created + int(seconds_later * 1e9))
        return Exposition(render(data))

    held = at(HOLD_S - 1)
    assert held.series("requests_total")[0].value == 0
    assert held.series("latency_seconds_count")[0].value == 0
    assert held.series("latency_seconds_sum")[0].value == 0
    assert {s.value for s in held.series("latency_seconds_bucket")} == {0}
    settled = at(HOLD_S + 1)
    assert settled.value("requests_total", status="404") == 3
    assert settled.value("latency_seconds_count", path="/x") == 1
    assert settled.value("latency_seconds_bucket", path="/x", le="1.0") == 1
    assert settled.value("latency_seconds_sum", path="/x") == 0.5


def test_gauges_and_settled_collections_pass_untouched() -> None:
    start = SeriesStart("testboost", hold_s=HOLD_S)
    reader, provider = fresh(start)
    meter = provider.get_meter("testboost")

    def gauge(_options: CallbackOptions) -> list[Observation]:
        return [Observation(7)]

    meter.create_observable_gauge("active", [gauge])
    meter.create_up_down_counter("queue").add(2)
    meter.create_counter("requests").add(1)
    data = reader.snapshot()
    later = time.time_ns() + int((HOLD_S + 1) * 1e9)
    assert start.apply(data, now_ns=later) is data  # nothing to change: no copy
    exposition = scrape(reader)  # now: inside the hold
    assert exposition.value("active") == 7
    assert exposition.value("queue") == 2
    assert exposition.value("requests_total") == 0
