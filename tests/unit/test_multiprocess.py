"""telemetry/multiprocess.py and metrics_dir.py: one scrape shows the sum over every worker's
collection — counters and histograms summed over live and dead workers alike, gauges by the
catalog's rule over live workers only — a worker publishes what it counted, at shutdown too;
the directory holds data, never code, belongs to one server, and its file count stays
bounded as workers die (dead workers folded into one record)."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
from pathlib import Path

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider

from telemetry import metrics_dir
from telemetry.catalog import BY_NAME
from telemetry.exposition import PrometheusTextReader, render
from telemetry.metrics_dir import MetricsDirError, identity
from telemetry.multiprocess import DEAD, SUFFIX, WorkerMetrics, decode, encode, prepare, publishable
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


def write_published(directory: Path, worker_id: str, reader: PrometheusTextReader) -> None:
    (directory / f"{worker_id}{SUFFIX}").write_bytes(encode(publishable(reader.snapshot())))


def dead_worker() -> str:
    """The identity of a worker that ran and exited."""
    process = subprocess.Popen(["sleep", "0.2"])
    worker_id = identity(process.pid)
    process.wait()
    assert worker_id is not None and not metrics_dir.alive(worker_id)
    return worker_id


def live_worker() -> str:
    worker_id = identity(os.getppid())
    assert worker_id is not None
    return worker_id


def calls(directory: Path, own: PrometheusTextReader | None = None) -> float | None:
    own = own or worker(calls=0, latencies=[], pool=0, active=0)
    exposition = Exposition(render(WorkerMetrics(directory).merged(own.snapshot())))
    return exposition.value("testboost_llm_calls_total", provider="p", model="m")


def test_scrape_sums_every_worker_and_keeps_dead_workers_counts(tmp_path: Path) -> None:
    own = worker(calls=2, latencies=[0.02], pool=1, active=5)
    write_published(
        tmp_path, live_worker(), worker(calls=3, latencies=[0.2, 0.3], pool=2, active=5)
    )
    write_published(tmp_path, dead_worker(), worker(calls=5, latencies=[2.0], pool=7, active=9))
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
    assert (tmp_path / f"{identity(os.getpid())}{SUFFIX}").exists()
    exposition = Exposition(render(metrics.merged(own.snapshot())))
    assert exposition.value("testboost_llm_calls_total") == 2


def test_worker_publishes_while_running_and_at_stop(tmp_path: Path) -> None:
    reader = PrometheusTextReader()
    counter = MeterProvider(metric_readers=[reader]).get_meter("t").create_counter("events")
    metrics = WorkerMetrics(tmp_path, interval_s=0.05)
    metrics.start(reader.snapshot)
    counter.add(1)
    published = tmp_path / f"{identity(os.getpid())}{SUFFIX}"

    def events() -> float:
        data = decode(published.read_bytes()) if published.exists() else []
        return sum(point[2] for *_head, points in data for point in points)

    until(lambda: events() == 1, timeout=5, message="first publication")
    counter.add(4)
    metrics.stop()  # the last counts are published at stop, whatever the interval
    assert events() == 5


def test_an_unreadable_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / f"{live_worker()}{SUFFIX}").write_bytes(b"not json")
    assert calls(tmp_path, worker(calls=1, latencies=[], pool=0, active=0)) == 1


# --- hostile files ------------------------------------------------------------------------------


class _Payload:
    """Unpickling this runs `touch`: what a dropped pickle could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_dropped_pickle_is_never_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory, marker = tmp_path / "metrics", tmp_path / "ran"
    directory.mkdir()
    for name in (live_worker(), dead_worker(), "123", DEAD):
        (directory / f"{name}{SUFFIX}").write_bytes(pickle.dumps(_Payload(marker)))
    with caplog.at_level(logging.WARNING):
        assert calls(directory, worker(calls=2, latencies=[], pool=0, active=0)) == 2
        WorkerMetrics(directory).fold()
    assert not marker.exists()
    assert "is skipped" in caplog.text


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"format": 1, "metrics": "x"},
        {"format": 1, "metrics": [["s", "testboost_llm_calls", "", "", "counter", [["a", 0, 1]]]]},
        {"format": 1, "metrics": [["s", "n", "", "", "counter", [[{"a": []}, 0, 1]]]]},
        {"format": 1, "metrics": [["s", "n", "", "", "counter", [[{}, 0, -1]]]]},
        {"format": 1, "metrics": [["s", "n", "", "", "exec", []]]},
        {
            "format": 1,
            "metrics": [["s", "n", "", "", "histogram", [[{}, 0, 2, 1.0, [1], [1], 0, 1]]]],
        },
        {"format": 2, "metrics": []},
    ],
    ids=lambda d: json.dumps(d)[:40],
)
def test_a_file_of_the_wrong_shape_is_skipped_and_the_scrape_answers(
    tmp_path: Path, document: object
) -> None:
    (tmp_path / f"{live_worker()}{SUFFIX}").write_text(json.dumps(document))
    assert calls(tmp_path, worker(calls=3, latencies=[], pool=0, active=0)) == 3


def test_a_reused_pid_is_another_worker(tmp_path: Path) -> None:
    """A new process with a dead worker's PID has a file of its own: the dead worker's counts
    stay (counters never go back), as a file named by the PID alone could not do."""
    pid = os.getpid()
    before_reuse = f"{pid}-1"  # this PID, started at another time: a dead worker
    assert not metrics_dir.alive(before_reuse)
    write_published(tmp_path, before_reuse, worker(calls=200, latencies=[], pool=0, active=0))
    metrics = WorkerMetrics(tmp_path)
    own = worker(calls=85, latencies=[], pool=0, active=0)
    metrics.publish(own.snapshot())
    assert calls(tmp_path, own) == 285


def test_dead_workers_are_folded_into_one_record(tmp_path: Path) -> None:
    for _ in range(30):
        write_published(tmp_path, dead_worker(), worker(calls=1, latencies=[0.2], pool=5, active=1))
    metrics = WorkerMetrics(tmp_path)
    own = worker(calls=1, latencies=[], pool=1, active=0)
    before = Exposition(render(metrics.merged(own.snapshot())))
    metrics.publish(own.snapshot())
    metrics.fold()
    names = sorted(p.name for p in tmp_path.glob(f"*{SUFFIX}"))
    assert names == sorted([f"{DEAD}{SUFFIX}", f"{metrics.worker}{SUFFIX}"])
    after = Exposition(render(metrics.merged(own.snapshot())))
    latency = "testboost_llm_request_duration_seconds"
    for exposition in (before, after):
        assert exposition.value("testboost_llm_calls_total", provider="p", model="m") == 31
        assert exposition.value(f"{latency}_count", provider="p") == 30
        assert exposition.value(f"{latency}_bucket", provider="p", le="0.25") == 30
        assert exposition.series("testboost_db_connection_pool_size")[0].value == 1  # live only
    write_published(tmp_path, dead_worker(), worker(calls=4, latencies=[], pool=0, active=0))
    metrics.fold()  # into the record that is there
    assert calls(tmp_path, own) == 35
    assert len(list(tmp_path.glob(f"*{SUFFIX}"))) == 2


# --- the directory --------------------------------------------------------------------------


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(MetricsDirError, match="others can write to it"):
        WorkerMetrics(shared)


def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o755)
    os.chown(foreign, 12345, 12345)  # the tests run as root (make test), like CI
    with pytest.raises(MetricsDirError, match="owned by uid 12345"):
        WorkerMetrics(foreign)


def test_a_missing_directory_is_made_for_this_user_alone(tmp_path: Path) -> None:
    WorkerMetrics(tmp_path / "new")
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700


def test_a_second_server_is_refused_and_removes_nothing(tmp_path: Path) -> None:
    write_published(tmp_path, dead_worker(), worker(calls=7, latencies=[], pool=0, active=0))
    (tmp_path / metrics_dir.SERVER_FILE).write_text(live_worker() + "\n")  # running, not ours
    with pytest.raises(MetricsDirError, match="used by another server"):
        prepare(tmp_path)
    assert calls(tmp_path) == 7


def test_a_dead_servers_directory_is_taken_over_and_emptied(tmp_path: Path) -> None:
    write_published(tmp_path, dead_worker(), worker(calls=7, latencies=[], pool=0, active=0))
    (tmp_path / metrics_dir.SERVER_FILE).write_text(dead_worker() + "\n")
    prepare(tmp_path)
    assert not list(tmp_path.glob(f"*{SUFFIX}"))
    assert (tmp_path / metrics_dir.SERVER_FILE).read_text().strip() == identity(os.getpid())


def test_histograms_with_no_observation_merge_both_ways(tmp_path: Path) -> None:
    """A histogram primed at zero has an infinite min and max: kept so in memory, null on
    disk, and merged with one that has observations in either order."""
    import math

    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Histogram,
        HistogramDataPoint,
        Metric,
        MetricsData,
        ResourceMetrics,
        ScopeMetrics,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    bounds = list(LLM_LATENCY.buckets)

    def data(count: int) -> MetricsData:
        buckets = [0] * (len(bounds) + 1)
        buckets[0] = count
        low, high = (0.01, 0.01) if count else (math.inf, -math.inf)
        point = HistogramDataPoint(
            {"provider": "p"}, 1, 2, count, 0.01 * count, buckets, bounds, low, high
        )
        metric = Metric(
            LLM_LATENCY.otel_name, "", "s", Histogram([point], AggregationTemporality.CUMULATIVE)
        )
        scope = ScopeMetrics(InstrumentationScope("testboost"), [metric], "")
        return MetricsData([ResourceMetrics(Resource({}), [scope], "")])

    latency = "testboost_llm_request_duration_seconds_count"
    for own, other in ((0, 3), (3, 0)):
        directory = tmp_path / f"own{own}"
        directory.mkdir()
        (directory / f"{dead_worker()}{SUFFIX}").write_bytes(encode(publishable(data(other))))
        merged = WorkerMetrics(directory).merged(data(own))
        assert Exposition(render(merged)).value(latency, provider="p") == 3


def test_a_fold_cut_short_counts_nobody_twice(tmp_path: Path) -> None:
    """The record is written, then the worker dies before removing the files it folded:
    scrapes read the files' counts once (from the record), and the next fold removes them."""
    workers = [dead_worker() for _ in range(3)]
    for worker_id in workers:
        write_published(tmp_path, worker_id, worker(calls=2, latencies=[], pool=0, active=0))
    metrics = WorkerMetrics(tmp_path)
    record = tmp_path / f"{DEAD}{SUFFIX}"
    metrics.fold()
    held = record.read_bytes()
    for worker_id in workers:  # as if the fold had stopped before its unlinks
        write_published(tmp_path, worker_id, worker(calls=2, latencies=[], pool=0, active=0))
    record.write_bytes(held)
    assert calls(tmp_path) == 6
    metrics.fold()
    assert [p.name for p in tmp_path.glob(f"*{SUFFIX}")] == [record.name]
    assert calls(tmp_path) == 6


def test_an_unreadable_record_is_never_overwritten(tmp_path: Path) -> None:
    record = tmp_path / f"{DEAD}{SUFFIX}"
    record.write_bytes(b"{broken")
    write_published(tmp_path, dead_worker(), worker(calls=2, latencies=[], pool=0, active=0))
    WorkerMetrics(tmp_path).fold()
    assert record.read_bytes() == b"{broken"  # its counts may be an operator's to recover
    assert calls(tmp_path) == 2  # the dead worker's file stays, and counts
