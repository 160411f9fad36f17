"""telemetry/series_start.py on a real MeterProvider: primed histogram series are there at zero
before their first observation and count it; a series nobody primed shows zero for the hold,
then its observations; gauges and settled collections pass untouched; the held series are
counted into one comment line that starts the 0.0.4 text (never OpenMetrics), which Prometheus'
parsers skip, also when several workers' collections are merged."""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as text_string_to_openmetrics_families,
)

from telemetry import _pull_transform
from telemetry.catalog import BY_NAME
from telemetry.exposition import PrometheusTextReader, render
from telemetry.instruments import Instruments
from telemetry.multiprocess import WorkerMetrics
from telemetry.series_start import SeriesStart, seconds_text
from tests.monitoring.tools import tool_path
from tests.support.exposition import Exposition
from tests.unit.test_multiprocess import live_worker, worker, write_published

WORKFLOW = BY_NAME["testboost_workflow_duration_seconds"]
HOLD_S = 30.0


def fresh(series_start: SeriesStart) -> tuple[PrometheusTextReader, MeterProvider]:
    reader = PrometheusTextReader(transform=series_start.apply_noted)  # the SDK's instruments alone
    return reader, MeterProvider(metric_readers=[reader])


def scrape(reader: PrometheusTextReader) -> Exposition:
    return Exposition(reader.render().decode())


def primed(workflow_types: list[str]) -> tuple[PrometheusTextReader, Instruments]:
    """A reader as setup() wires it: the recorded families, then the series-start rule."""
    instruments = Instruments("testboost", Resource.get_empty())
    instruments.prime("openai", "gpt", workflow_types)
    start = SeriesStart(hold_s=0)
    return PrometheusTextReader(
        produce=instruments.collect, transform=start.apply_noted
    ), instruments


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


def test_held_series_are_counted_in_one_comment_line() -> None:
    start = SeriesStart(hold_s=22.5)
    reader, provider = fresh(start)
    meter = provider.get_meter("testboost")
    requests = meter.create_counter("requests")
    requests.add(3, {"status": "404"})
    requests.add(1, {"status": "500"})
    meter.create_histogram("latency", unit="s").record(0.5, {"path": "/x"})
    meter.create_counter("idle").add(0)  # zero anyway: nothing to hold, not counted
    data = reader.snapshot()
    assert data is not None
    metrics = data.resource_metrics[0].scope_metrics[0].metrics
    newest = max(p.start_time_unix_nano for m in metrics for p in m.data.data_points)
    until = time.strftime("%H:%M:%S", time.gmtime(math.ceil(newest / 1e9 + 22.5)))

    _data, comment = start.apply_noted(data, now_ns=newest + 1)
    assert comment == (
        f"# TestBoost: 3 new series read 0 until {until} UTC (held 22.5 s so Prometheus "
        "records their start; docs/metrics.md#first-observations)\n"
    )
    assert start.apply_noted(data, now_ns=newest + int(23 * 1e9)) == (data, "")


def test_the_comment_starts_the_text_format_only_and_parsers_skip_it() -> None:
    reader, provider = fresh(SeriesStart(hold_s=HOLD_S))
    provider.get_meter("testboost").create_counter("requests").add(3, {"status": "404"})
    text = reader.render().decode()
    comment, rest = text.split("\n", 1)
    assert comment.startswith("# TestBoost: 1 new series read 0 until ")
    assert samples(Exposition(text)) == samples(Exposition(rest)) != []
    openmetrics = reader.render(openmetrics=True).decode()
    assert "TestBoost" not in openmetrics  # its grammar has no free comments
    assert list(text_string_to_openmetrics_families(openmetrics))


@pytest.mark.tools
def test_promtool_reads_the_commented_text() -> None:
    reader, instruments = primed(["analysis"])
    held = SeriesStart(hold_s=HOLD_S)
    reader = PrometheusTextReader(produce=instruments.collect, transform=held.apply_noted)
    MeterProvider(metric_readers=[reader])
    instruments.workflow_finished("analysis", "completed", 3.0)
    body = reader.render()
    assert body.startswith(b"# TestBoost: ")
    checked = subprocess.run(
        [tool_path("promtool"), "check", "metrics"],
        input=body,
        capture_output=True,
        timeout=60,
        check=False,
    )
    # Lint findings (e.g. counters without HELP text) are fine; parse errors are not.
    assert b"error while linting" not in checked.stderr, checked.stderr


def test_several_workers_get_one_comment_for_the_merge(tmp_path: Path) -> None:
    write_published(tmp_path, live_worker(), worker(calls=3, latencies=[0.2], pool=1, active=0))
    own = worker(calls=2, latencies=[0.02], pool=1, active=0)
    transform = _pull_transform(SeriesStart(hold_s=HOLD_S), WorkerMetrics(tmp_path))
    data, comment = transform(own.snapshot())
    # One counter and one histogram series, each summed over both workers; gauges not held.
    assert comment.startswith("# TestBoost: 2 new series read 0 until ")
    exposition = Exposition(render(data, comment=comment))
    assert exposition.value("testboost_llm_calls_total", provider="p", model="m") == 0
    assert exposition.value("testboost_db_connection_pool_size") == 2


@pytest.mark.parametrize(
    ("seconds", "text"), [(30.0, "30"), (22.5, "22.5"), (0.0, "0"), (100.0, "100"), (0.1, "0.1")]
)
def test_seconds_text(seconds: float, text: str) -> None:
    assert seconds_text(seconds) == text


def samples(exposition: Exposition) -> list[tuple[str, float]]:
    return [(s.name, s.value) for s in exposition.samples]
