"""Pull mode with several worker processes: one scrape shows the sum over all of them.

Each worker's SDK keeps its own numbers (opentelemetry-python#3747), and a scrape of the shared
port reaches one worker at random. As prometheus_client's multiprocess mode does, every worker
publishes its collection to a file of its own in a directory the workers share (every second,
and once more at shutdown); the worker that answers a scrape merges its fresh collection with
the other workers' files:

- counters and histograms are summed per label set, and a worker that died keeps its file, so
  its counts stay in the sum and every counter stays monotonic while workers come and go;
- gauges are merged per the catalog's `across_workers` rule over live workers only: the pool
  gauges are summed (the pool utilisation of the whole server), `testboost_active_sessions`,
  the database's count that every worker reads alike, takes the max.

The directory must be empty when the server starts (`testboost serve --workers N` makes a
fresh one; docs/architecture.md says how for gunicorn or `uvicorn --workers`). A worker killed
outright loses what it counted since its last publication (at most `interval_s`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from telemetry.catalog import BY_OTEL_NAME

log = logging.getLogger(__name__)
SUFFIX = ".metrics"
CUMULATIVE = AggregationTemporality.CUMULATIVE
# kinds in a published file
COUNTER, UPDOWN, GAUGE, HISTOGRAM = "counter", "updown", "gauge", "histogram"

# One published metric: (scope, name, description, unit, kind, points). A point is
# (attributes, start_ns, value) or, for histograms,
# (attributes, start_ns, count, sum, bounds, bucket_counts, min, max).
Published = tuple[str, str, str, str, str, list[tuple[Any, ...]]]


def publishable(data: MetricsData | None) -> list[Published]:
    """The plain-data form of a collection (SDK objects hold locks and do not pickle)."""
    out: list[Published] = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                series = metric.data
                points: list[tuple[Any, ...]]
                if isinstance(series, Histogram):
                    kind = HISTOGRAM
                    points = [
                        (
                            dict(p.attributes or {}),
                            p.start_time_unix_nano,
                            p.count,
                            p.sum,
                            tuple(p.explicit_bounds),
                            tuple(p.bucket_counts),
                            p.min,
                            p.max,
                        )
                        for p in series.data_points
                    ]
                elif isinstance(series, Sum | Gauge):
                    if isinstance(series, Gauge):
                        kind = GAUGE
                    else:
                        kind = COUNTER if series.is_monotonic else UPDOWN
                    points = [
                        (dict(p.attributes or {}), p.start_time_unix_nano, p.value)
                        for p in series.data_points
                    ]
                else:
                    continue
                out.append(
                    (
                        sm.scope.name,
                        metric.name,
                        metric.description or "",
                        metric.unit or "",
                        kind,
                        points,
                    )
                )
    return out


class _Series:
    __slots__ = ("attrs", "bounds", "buckets", "count", "max", "min", "start", "sum", "value")

    def __init__(self, attrs: Any, point: tuple[Any, ...], kind: str) -> None:
        self.attrs = attrs
        self.start = point[1]
        if kind == HISTOGRAM:
            _a, _s, self.count, self.sum, self.bounds, buckets, self.min, self.max = point
            self.buckets = list(buckets)
        else:
            self.value = point[2]

    def add(self, point: tuple[Any, ...], kind: str, rule: str) -> None:
        if point[1] is not None and (self.start is None or point[1] < self.start):
            self.start = point[1]  # the series' first creation in any worker (gauges: None)
        if kind != HISTOGRAM:
            value = point[2]
            self.value = max(self.value, value) if rule == "max" else self.value + value
            return
        _a, _s, count, total, bounds, buckets, low, high = point
        if tuple(bounds) != tuple(self.bounds):
            log.warning("histogram bounds differ between workers; a worker's points are skipped")
            return
        self.count += count
        self.sum += total
        self.buckets = [a + b for a, b in zip(self.buckets, buckets, strict=True)]
        self.min, self.max = min(self.min, low), max(self.max, high)


class WorkerMetrics:
    """This worker's publication, and the merge of every worker's for a scrape."""

    def __init__(self, directory: Path, interval_s: float = 1.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._collect: Callable[[], MetricsData | None] = lambda: None
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # One attributes dict per series for the process' life: the renderer's cache is keyed
        # by the identity of a point's attributes.
        self._attrs: dict[tuple[str, tuple[Any, ...]], Any] = {}

    # --- this worker ------------------------------------------------------------------------

    def start(self, collect: Callable[[], MetricsData | None]) -> None:
        """Publish what `collect` returns every `interval_s`, from a thread of its own."""
        self._collect = collect
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="metrics-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Publish a last time: a worker that stops cleanly loses nothing."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        self.publish()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.publish()
            except Exception:  # never let publishing kill the worker; try again next time
                log.exception("publishing this worker's metrics failed")

    def publish(self, data: MetricsData | None = None) -> None:
        data = self._collect() if data is None else data
        payload = pickle.dumps(publishable(data), protocol=pickle.HIGHEST_PROTOCOL)
        target = self.directory / f"{os.getpid()}{SUFFIX}"
        scratch = self.directory / f".{os.getpid()}.tmp"
        scratch.write_bytes(payload)
        os.replace(scratch, target)  # readers see the old file or the new one, never half

    # --- the scrape ---------------------------------------------------------------------------

    def merged(self, own: MetricsData | None) -> MetricsData | None:
        """This worker's fresh collection plus every other worker's latest publication."""
        me = os.getpid()
        sources: list[tuple[bool, list[Published]]] = [(True, publishable(own))]
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            pid = int(path.stem) if path.stem.isdigit() else None
            if pid is None or pid == me:
                continue
            try:
                published = pickle.loads(path.read_bytes())
            except (OSError, pickle.UnpicklingError, EOFError):
                log.warning("unreadable worker metrics file %s is skipped", path)
                continue
            sources.append((_alive(pid), published))
        resource = (
            own.resource_metrics[0].resource if own and own.resource_metrics else Resource({})
        )
        return self._merge(sources, resource)

    def _merge(
        self, sources: list[tuple[bool, list[Published]]], resource: Resource
    ) -> MetricsData:
        now = time.time_ns()
        merged: dict[tuple[str, str], tuple[str, str, str, dict[tuple[Any, ...], _Series]]] = {}
        for alive, published in sources:
            for scope, name, description, unit, kind, points in published:
                if kind in (GAUGE, UPDOWN) and not alive:
                    continue  # a dead worker's current values are not current
                family = BY_OTEL_NAME.get(name)
                rule = family.across_workers if family and kind in (GAUGE, UPDOWN) else "sum"
                entry = merged.setdefault((scope, name), (description, unit, kind, {}))
                series = entry[3]
                for point in points:
                    key = tuple(sorted(point[0].items()))
                    existing = series.get(key)
                    if existing is None:
                        series[key] = _Series(self._canonical(name, key, point[0]), point, kind)
                    else:
                        existing.add(point, kind, rule)
        scopes: dict[str, list[Metric]] = {}
        for (scope, name), (description, unit, kind, series) in merged.items():
            scopes.setdefault(scope, []).append(
                Metric(name, description, unit, _data(kind, series.values(), now))
            )
        return MetricsData(
            [
                ResourceMetrics(
                    resource,
                    [ScopeMetrics(InstrumentationScope(s), m, "") for s, m in scopes.items()],
                    "",
                )
            ]
        )

    def _canonical(self, name: str, key: tuple[Any, ...], attrs: Any) -> Any:
        return self._attrs.setdefault((name, key), attrs)


def _data(kind: str, series: Any, now: int) -> Any:
    if kind == HISTOGRAM:
        return Histogram(
            [
                HistogramDataPoint(
                    s.attrs, s.start, now, s.count, s.sum, s.buckets, s.bounds, s.min, s.max
                )
                for s in series
            ],
            CUMULATIVE,
        )
    points = [NumberDataPoint(s.attrs, s.start, now, s.value) for s in series]
    if kind == GAUGE:
        return Gauge(points)
    return Sum(points, CUMULATIVE, is_monotonic=kind == COUNTER)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear(directory: Path) -> None:
    """Empty a metrics directory before the workers start (what a fresh server needs)."""
    for path in Path(directory).glob(f"*{SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
