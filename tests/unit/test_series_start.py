"""telemetry/series_start.py on a real MeterProvider: primed histogram series are there at zero
before their first observation and count it; a series nobody primed shows zero for the hold,
then its observations; gauges and settled collections pass untouched."""

from __future__ import annotations

import time

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource

from telemetry.catalog import BY_NAME
from telemetry.exposition import PrometheusTextReader, render
from telemetry.instruments import Instruments
from telemetry.series_start import SeriesStart
from tests.support.exposition import Exposition

WORKFLOW = BY_NAME["testboost_workflow_duration_seconds"]
HOLD_S = 30.0


def fresh(series_start: SeriesStart) -> tuple[PrometheusTextReader, MeterProvider]:
    reader = PrometheusTextReader(transform=series_start.apply)  # the SDK's instruments alone
    return reader, MeterProvider(metric_readers=[reader])


def scrape(reader: PrometheusTextReader) -> Exposition:
    return Exposition(reader.render().decode())


def primed(workflow_types: list[str]) -> tuple[PrometheusTextReader, Instruments]:
    """A reader as setup() wires it: the recorded families, then the series-start rule."""
    instruments = Instruments("testboost", Resource.get_empty())
    instruments.prime("openai", "gpt", workflow_types)
    start = SeriesStart(hold_s=0)
    return PrometheusTextReader(produce=instruments.collect, transform=start.apply), instruments


def test_primed_histogram_is_zero_before_any_observation() -> None:
    reader, _instruments = primed(["analysis", "generation"])
    exposition = scrape(reader)
    name = "testboost_workflow_duration_seconds"
    assert exposition.types[name] == "histogram"
    for workflow_type in ("analysis", "generation"):
        assert len(exposition.series(f"{name}_count")) == 2
        assert exposition.value(f"{name}_count", workflow_type=workflow_type) == 0
        assert exposition.value(f"{name}_sum", workflow_type=workflow_type) == 0
        assert exposition.value(f"{name}_bucket", workflow_type=workflow_type, le="+Inf") == 0
    assert len(exposition.series(f"{name}_bucket")) == 2 * (len(WORKFLOW.buckets) + 1)


def test_primed_series_counts_its_first_observation() -> None:
    reader, instruments = primed(["analysis", "generation"])
    MeterProvider(metric_readers=[reader])
    before = scrape(reader)
    instruments.workflow_finished("analysis", "completed", 42.0)
    exposition = scrape(reader)
    name = "testboost_workflow_duration_seconds"
    # Not held: the series was there at zero, so a scraper already has its baseline.
    assert before.value(f"{name}_count", workflow_type="analysis") == 0
    assert exposition.value(f"{name}_count", workflow_type="analysis") == 1
    assert exposition.value(f"{name}_sum", workflow_type="analysis") == 42.0
    assert exposition.value(f"{name}_count", workflow_type="generation") == 0
    assert (
        exposition.value("testboost_workflow_total", workflow_type="analysis", status="completed")
        == 1
    )
    assert len(exposition.series(f"{name}_count")) == 2
    assert exposition.text.count(f"# TYPE {name} ") == 1


def test_a_new_series_shows_zero_for_the_hold_then_its_value() -> None:
    start = SeriesStart(hold_s=HOLD_S)
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
    start = SeriesStart(hold_s=HOLD_S)
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
