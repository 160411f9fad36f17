"""telemetry/multiprocess.py: one scrape shows the sum over every worker's collection —
counters and histograms summed over live and dead workers alike, gauges by the catalog's rule
over live workers only — and a worker publishes what it counted, at shutdown too."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider

from telemetry.catalog import BY_NAME
from telemetry.exposition import PrometheusTextReader, render
from telemetry.multiprocess import SUFFIX, WorkerMetrics, publishable
from tests.support.exposition import Exposition
from tests.support.waiting import until

LLM_LATENCY = BY_NAME["testboost_llm_request_duration_seconds"]


def worker(calls: int, latencies: list[float], pool: int, active: int) -> PrometheusTextReader:
    """One worker's SDK state, as the API's instruments would hold it."""
    reader = PrometheusTextReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("testboost")
    meter.create_counter("testboost_llm_calls").add(calls, {"provider": "p", "model": "m"})
    histogram = meter.create_histogram(
        LLM_LATENCY.otel_name, unit="s", explicit_bucket_boundaries_advisory=LLM_LATENCY.buckets
    )
    for seconds in latencies:
        histogram.record(seconds, {"provider": "p"})

    def gauge(value: int) -> object:
        return lambda _options: [Observation(value)]

    meter.create_observable_gauge("testboost_db_connection_pool_size", [gauge(pool)])
    meter.create_observable_gauge("testboost_active_sessions", [gauge(active)])
    return reader


def write_published(directory: Path, pid: int, reader: PrometheusTextReader) -> None:
    payload = pickle.dumps(publishable(reader.snapshot()))
    (directory / f"{pid}{SUFFIX}").write_bytes(payload)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_scrape_sums_every_worker_and_keeps_dead_workers_counts(tmp_path: Path) -> None:
    own = worker(calls=2, latencies=[0.02], pool=1, active=5)
    write_published(tmp_path, os.getppid(), worker(calls=3, latencies=[0.2, 0.3], pool=2, active=5))
    write_published(tmp_path, dead_pid(), worker(calls=5, latencies=[2.0], pool=7, active=9))
    merged = WorkerMetrics(tmp_path).merged(own.snapshot())
    exposition = Exposition(render(merged))

    assert exposition.value("testboost_llm_calls_total", provider="p", model="m") == 10
    latency = "testboost_llm_request_duration_seconds"
    assert exposition.value(f"{latency}_count", provider="p") == 4
    assert exposition.value(f"{latency}_sum", provider="p") == 2.52
    assert exposition.value(f"{latency}_bucket", provider="p", le="0.025") == 1
    assert exposition.value(f"{latency}_bucket", provider="p", le="0.25") == 2
    assert exposition.value(f"{latency}_bucket", provider="p", le="+Inf") == 4
    # Gauges over live workers: the pool summed, active sessions (one database) its max.
    assert exposition.series("testboost_db_connection_pool_size")[0].value == 3
    assert exposition.series("testboost_active_sessions")[0].value == 5
    assert len(exposition.series("testboost_llm_calls_total")) == 1


def test_own_file_is_not_counted_twice(tmp_path: Path) -> None:
    own = worker(calls=2, latencies=[], pool=1, active=0)
    metrics = WorkerMetrics(tmp_path)
    metrics.publish(own.snapshot())
    assert (tmp_path / f"{os.getpid()}{SUFFIX}").exists()
    exposition = Exposition(render(metrics.merged(own.snapshot())))
    assert exposition.value("testboost_llm_calls_total") == 2


def test_worker_publishes_while_running_and_at_stop(tmp_path: Path) -> None:
    reader = PrometheusTextReader()
    counter = MeterProvider(metric_readers=[reader]).get_meter("t").create_counter("events")
    metrics = WorkerMetrics(tmp_path, interval_s=0.05)
    metrics.start(reader.snapshot)
    counter.add(1)
    published = tmp_path / f"{os.getpid()}{SUFFIX}"

    def events() -> float:
        data = pickle.loads(published.read_bytes()) if published.exists() else []
        return sum(point[2] for *_head, points in data for point in points)

    until(lambda: events() == 1, timeout=5, message="first publication")
    counter.add(4)
    metrics.stop()  # the last counts are published at stop, whatever the interval
    assert events() == 5


def test_an_unreadable_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / f"{os.getppid()}{SUFFIX}").write_bytes(b"not a pickle")
    own = worker(calls=1, latencies=[], pool=0, active=0)
    exposition = Exposition(render(WorkerMetrics(tmp_path).merged(own.snapshot())))
    assert exposition.value("testboost_llm_calls_total") == 1
