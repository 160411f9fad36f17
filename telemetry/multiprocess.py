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
  the database's count that every worker reads alike, takes the max;
- exemplars (pull mode with traces) travel with their points, and the merge keeps, per
  histogram bucket (per counter series), the newest of every worker's, dead ones' included:
  the OpenMetrics scrape links each bucket to the latest request it counted, in any worker.

The files are data, never code: JSON of plain numbers and strings, each checked for its shape
before use (a file that is not is skipped with a warning, and the scrape answers). Who may use
the directory, and how files are named, is telemetry/metrics_dir.py. Dead workers' files are
folded into one record (`dead.metrics`) by the live workers' publishers, under the directory's
lock, so the file count stays at the live workers plus one however often workers come and go.

The directory must be empty when the server starts (`testboost serve --workers N` makes a
fresh one; docs/architecture.md says how for gunicorn or `uvicorn --workers`). A worker killed
outright loses what it counted since its last publication (at most `interval_s`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import Exemplar
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

from telemetry import metrics_dir
from telemetry.catalog import BY_OTEL_NAME

log = logging.getLogger(__name__)
SUFFIX = ".metrics"
DEAD = "dead"  # the record of every dead worker's counters and histograms
FORMAT = 1
# A worker's file is a few hundred kB at the catalog's cardinality limits; far more is not one.
MAX_FILE_BYTES = 64 * 1024 * 1024
CUMULATIVE = AggregationTemporality.CUMULATIVE
# kinds in a published file
COUNTER, UPDOWN, GAUGE, HISTOGRAM = "counter", "updown", "gauge", "histogram"
KINDS = (COUNTER, UPDOWN, GAUGE, HISTOGRAM)

# One published metric: (scope, name, description, unit, kind, points). A point is
# (attributes, start_ns, value, exemplars) or, for histograms,
# (attributes, start_ns, count, sum, bounds, bucket_counts, min, max, exemplars); the
# exemplars a list of (value, time_ns, trace_id hex or None, span_id hex or None,
# filtered attributes). A file without them (the points' last field) is read as having none.
Published = tuple[str, str, str, str, str, list[tuple[Any, ...]]]
PlainExemplar = tuple[float, int, str | None, str | None, dict[str, Any]]


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
                            _plain_exemplars(p.exemplars),
                        )
                        for p in series.data_points
                    ]
                elif isinstance(series, Sum | Gauge):
                    if isinstance(series, Gauge):
                        kind = GAUGE
                    else:
                        kind = COUNTER if series.is_monotonic else UPDOWN
                    points = [
                        (
                            dict(p.attributes or {}),
                            p.start_time_unix_nano,
                            p.value,
                            _plain_exemplars(p.exemplars),
                        )
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


def _plain_exemplars(exemplars: Any) -> list[PlainExemplar]:
    return [
        (
            e.value,
            e.time_unix_nano,
            format(e.trace_id, "032x") if e.trace_id else None,
            format(e.span_id, "016x") if e.span_id else None,
            dict(e.filtered_attributes or {}),
        )
        for e in exemplars or ()
    ]


def encode(published: list[Published], **extra: Any) -> bytes:
    """JSON; a histogram's min and max with no observation (infinite) as null."""
    metrics = [
        (*head, [(*p[:6], _finite(p[6]), _finite(p[7]), *p[8:]) for p in points])
        if head[4] == HISTOGRAM
        else (*head, points)
        for *head, points in published
    ]
    return json.dumps({"format": FORMAT, "metrics": metrics, **extra}, allow_nan=False).encode()


def decode(payload: bytes) -> list[Published]:
    """A published file's metrics; ValueError unless every part has its expected shape."""
    return decode_record(payload)[0]


def decode_record(payload: bytes) -> tuple[list[Published], frozenset[str]]:
    """The metrics, and (the dead record's) the workers already folded into them."""
    document = json.loads(payload)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a format {FORMAT} metrics file")
    metrics, folded = document.get("metrics"), document.get("folded", [])
    if not isinstance(metrics, list):
        raise ValueError("no metrics list")
    if not (isinstance(folded, list) and all(isinstance(w, str) for w in folded)):
        raise ValueError("folded is a list of workers")
    return [_metric(entry) for entry in metrics], frozenset(folded)


def _metric(entry: Any) -> Published:
    if not (isinstance(entry, list) and len(entry) == 6):
        raise ValueError("a metric is [scope, name, description, unit, kind, points]")
    scope, name, description, unit, kind, points = entry
    if not all(isinstance(text, str) for text in (scope, name, description, unit)):
        raise ValueError("scope, name, description and unit are strings")
    if kind not in KINDS or not isinstance(points, list):
        raise ValueError(f"{name}: unknown kind {kind!r} or no points")
    return (scope, name, description, unit, kind, [_point(p, kind, name) for p in points])


def _point(point: Any, kind: str, name: str) -> tuple[Any, ...]:
    size = 8 if kind == HISTOGRAM else 3
    if not (isinstance(point, list) and len(point) in (size, size + 1)):
        raise ValueError(f"{name}: a {kind} point has {size} fields, and its exemplars")
    attrs, start = point[0], point[1]
    if not _attributes(attrs):
        raise ValueError(f"{name}: attributes are strings to scalars")
    if start is not None and not _count(start):
        raise ValueError(f"{name}: a start time is a whole number of nanoseconds")
    exemplars = _exemplars(point[size], name) if len(point) > size else []
    if kind != HISTOGRAM:
        if not _number(point[2]) or (kind == COUNTER and point[2] < 0):
            raise ValueError(f"{name}: a {kind}'s value is a finite number")
        return (attrs, start, point[2], exemplars)
    _a, _s, count, total, bounds, buckets, low, high = point[:size]
    if not (
        _count(count)
        and _number(total)
        and isinstance(bounds, list)
        and all(_number(b) for b in bounds)
        and isinstance(buckets, list)
        and len(buckets) == len(bounds) + 1
        and all(_count(c) for c in buckets)
        and sum(buckets) == count
        and (low is None or _number(low))
        and (high is None or _number(high))
    ):
        raise ValueError(f"{name}: a histogram point's count, sum, bounds or buckets")
    low = math.inf if low is None else low
    high = -math.inf if high is None else high
    return (attrs, start, count, total, tuple(bounds), tuple(buckets), low, high, exemplars)


def _attributes(attrs: Any) -> bool:
    return isinstance(attrs, dict) and all(
        isinstance(k, str) and isinstance(v, str | bool | int | float) for k, v in attrs.items()
    )


def _exemplars(entries: Any, name: str) -> list[PlainExemplar]:
    """[value, time_ns, trace_id hex, span_id hex, attributes] each, or ValueError."""
    if not isinstance(entries, list):
        raise ValueError(f"{name}: exemplars are a list")
    out: list[PlainExemplar] = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 5):
            raise ValueError(f"{name}: an exemplar is [value, time, trace, span, attributes]")
        value, time_ns, trace_id, span_id, attrs = entry
        if not (
            _number(value)
            and _count(time_ns)
            and _hex_id(trace_id, 32)
            and _hex_id(span_id, 16)
            and _attributes(attrs)
        ):
            raise ValueError(f"{name}: an exemplar's value, time, trace, span or attributes")
        out.append((value, time_ns, trace_id, span_id, attrs))
    return out


def _hex_id(value: Any, digits: int) -> bool:
    return value is None or (
        isinstance(value, str)
        and len(value) == digits
        and all(c in "0123456789abcdef" for c in value)
    )


def _finite(value: float) -> float | None:
    """min/max of a histogram with no observation are infinite, which JSON cannot hold."""
    return value if math.isfinite(value) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _Series:
    __slots__ = (
        "attrs",
        "bounds",
        "buckets",
        "count",
        "exemplars",
        "max",
        "min",
        "start",
        "sum",
        "value",
    )

    def __init__(self, attrs: Any, point: tuple[Any, ...], kind: str) -> None:
        self.attrs = attrs
        self.start = point[1]
        # Histograms: bucket index -> the newest exemplar; counters: 0 -> the newest.
        self.exemplars: dict[int, PlainExemplar] = {}
        if kind == HISTOGRAM:
            _a, _s, self.count, self.sum, self.bounds, buckets, self.min, self.max = point[:8]
            self.buckets = list(buckets)
        else:
            self.value = point[2]
        if len(point) in (4, 9) and kind in (HISTOGRAM, COUNTER):
            self._newest(point[-1], kind == HISTOGRAM)

    def add(self, point: tuple[Any, ...], kind: str, rule: str) -> None:
        if point[1] is not None and (self.start is None or point[1] < self.start):
            self.start = point[1]  # the series' first creation in any worker (gauges: None)
        if kind != HISTOGRAM:
            value = point[2]
            self.value = max(self.value, value) if rule == "max" else self.value + value
            if kind == COUNTER and len(point) == 4:
                self._newest(point[3], False)
            return
        _a, _s, count, total, bounds, buckets, low, high = point[:8]
        if tuple(bounds) != tuple(self.bounds):
            log.warning("histogram bounds differ between workers; a worker's points are skipped")
            return
        self.count += count
        self.sum += total
        self.buckets = [a + b for a, b in zip(self.buckets, buckets, strict=True)]
        self.min, self.max = min(self.min, low), max(self.max, high)
        if len(point) == 9:
            self._newest(point[8], True)

    def _newest(self, exemplars: list[PlainExemplar], histogram: bool) -> None:
        for exemplar in exemplars:
            key = bisect_left(self.bounds, exemplar[0]) if histogram else 0
            kept = self.exemplars.get(key)
            if kept is None or exemplar[1] > kept[1]:
                self.exemplars[key] = exemplar


class WorkerMetrics:
    """This worker's publication, and the merge of every worker's for a scrape.

    Raises metrics_dir.MetricsDirError when the directory is not this server's alone."""

    def __init__(self, directory: Path, interval_s: float = 1.0) -> None:
        self.directory = Path(directory)
        metrics_dir.check(self.directory)
        self.worker = metrics_dir.identity(os.getpid()) or f"{os.getpid()}-0"
        server = metrics_dir.identity(os.getppid()) or f"{os.getppid()}-0"
        metrics_dir.claim(self.directory, server)
        self._collect: Callable[[], MetricsData | None] = lambda: None
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # One attributes dict per series for the process' life: the renderer's cache is keyed
        # by the identity of a point's attributes.
        self._attrs: dict[tuple[str, tuple[Any, ...]], Any] = {}
        self._warned: set[str] = set()

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
                self.fold()
            except Exception as exc:  # never let publishing kill the worker; try again later
                self._warn(f"publishing this worker's metrics failed: {exc}")

    def publish(self, data: MetricsData | None = None) -> None:
        data = self._collect() if data is None else data
        payload = encode(publishable(data))
        target = self.directory / f"{self.worker}{SUFFIX}"
        scratch = self.directory / f".{self.worker}.tmp"
        scratch.write_bytes(payload)
        os.replace(scratch, target)  # readers see the old file or the new one, never half

    def fold(self) -> None:
        """Fold dead workers' files into the dead record, and remove them. The record names
        the workers it holds, so that a fold cut short between writing it and removing their
        files counts nobody twice; an unreadable record is left alone, never overwritten."""
        with metrics_dir.locked(self.directory, exclusive=True):
            record = self.directory / f"{DEAD}{SUFFIX}"
            sources, folded = [], frozenset[str]()
            if record.exists():
                read = self._read(record)
                if read is None:
                    return  # warned; its counts are not ours to drop
                sources, folded = [read[0]], read[1]
            files = {worker: path for path, worker in self._files() if worker != DEAD}
            dead = {
                worker: path
                for worker, path in files.items()
                if worker != self.worker and not metrics_dir.alive(worker)
            }
            new = {}
            for worker, path in dead.items():
                read = None if worker in folded else self._read(path)
                if read is not None:
                    sources.append(read[0])
                    new[worker] = path
            if new:
                # As dead sources: their counters and histograms, not their gauges.
                merged = _accumulate([(False, published) for published in sources])
                holds = sorted((folded & files.keys()) | new.keys())
                scratch = self.directory / f".{DEAD}.tmp"
                scratch.write_bytes(encode(_published(merged), folded=holds))
                os.replace(scratch, record)
            for worker in (folded & dead.keys()) | new.keys():
                dead[worker].unlink(missing_ok=True)

    # --- the scrape ---------------------------------------------------------------------------

    def merged(self, own: MetricsData | None) -> MetricsData | None:
        """This worker's fresh collection plus every other worker's latest publication."""
        sources: list[tuple[bool, list[Published]]] = [(True, publishable(own))]
        with metrics_dir.locked(self.directory, exclusive=False):
            files = self._files()
            record = next((path for path, worker in files if worker == DEAD), None)
            read = self._read(record) if record else None
            folded = read[1] if read else frozenset()
            if read:
                sources.append((False, read[0]))
            for path, worker in files:
                if worker in (self.worker, DEAD) or worker in folded:
                    continue  # counted here already, or in the dead record
                published = self._read(path)
                if published is not None:
                    sources.append((metrics_dir.alive(worker), published[0]))
        resource = (
            own.resource_metrics[0].resource if own and own.resource_metrics else Resource({})
        )
        return self._merge(sources, resource)

    def _files(self) -> list[tuple[Path, str]]:
        """The published files and their workers (`<pid>-<start>`, or DEAD)."""
        found = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            worker = path.name[: -len(SUFFIX)]
            pid, _, start = worker.partition("-")
            if worker == DEAD or (pid.isdigit() and start.isdigit()):
                found.append((path, worker))
            else:
                self._warn(f"{path} is not a worker's metrics file: skipped")
        return found

    def _read(self, path: Path) -> tuple[list[Published], frozenset[str]] | None:
        try:
            with open(path, "rb") as file:
                payload = file.read(MAX_FILE_BYTES + 1)
            if len(payload) > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            return decode_record(payload)
        except FileNotFoundError:
            return None  # folded, or its worker replaced it, since the listing
        except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
            self._warn(f"unreadable worker metrics file {path} is skipped: {exc}")
            return None

    def _warn(self, message: str) -> None:
        """Each distinct problem once per process, not once per scrape or second."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def _merge(
        self, sources: list[tuple[bool, list[Published]]], resource: Resource
    ) -> MetricsData:
        now = time.time_ns()
        scopes: dict[str, list[Metric]] = {}
        for (scope, name), (description, unit, kind, series) in _accumulate(sources).items():
            for key, entry in series.items():
                entry.attrs = self._attrs.setdefault((name, key), entry.attrs)
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


Accumulated = dict[tuple[str, str], tuple[str, str, str, dict[tuple[Any, ...], "_Series"]]]


def _accumulate(sources: list[tuple[bool, list[Published]]]) -> Accumulated:
    """Every source's series summed per label set (gauges by the catalog's rule, and only
    from live workers: a dead worker's current values are not current)."""
    merged: Accumulated = {}
    for alive, published in sources:
        for scope, name, description, unit, kind, points in published:
            if kind in (GAUGE, UPDOWN) and not alive:
                continue
            family = BY_OTEL_NAME.get(name)
            rule = family.across_workers if family and kind in (GAUGE, UPDOWN) else "sum"
            entry = merged.setdefault((scope, name), (description, unit, kind, {}))
            if entry[2] != kind:
                log.warning("%s has two kinds across workers; a worker's points are skipped", name)
                continue
            series = entry[3]
            for point in points:
                key = tuple(sorted(point[0].items()))
                existing = series.get(key)
                if existing is None:
                    series[key] = _Series(point[0], point, kind)
                else:
                    existing.add(point, kind, rule)
    return merged


def _published(merged: Accumulated) -> list[Published]:
    """The plain-data form of accumulated series (the dead record)."""
    out: list[Published] = []
    for (scope, name), (description, unit, kind, series) in merged.items():
        points: list[tuple[Any, ...]]
        if kind == HISTOGRAM:
            points = [
                (
                    s.attrs,
                    s.start,
                    s.count,
                    s.sum,
                    s.bounds,
                    s.buckets,
                    s.min,
                    s.max,
                    list(s.exemplars.values()),
                )
                for s in series.values()
            ]
        else:
            points = [
                (s.attrs, s.start, s.value, list(s.exemplars.values())) for s in series.values()
            ]
        out.append((scope, name, description, unit, kind, points))
    return out


def _data(kind: str, series: Any, now: int) -> Any:
    if kind == HISTOGRAM:
        return Histogram(
            [
                HistogramDataPoint(
                    s.attrs,
                    s.start,
                    now,
                    s.count,
                    s.sum,
                    s.buckets,
                    s.bounds,
                    s.min,
                    s.max,
                    _sdk_exemplars(s.exemplars),
                )
                for s in series
            ],
            CUMULATIVE,
        )
    points = [
        NumberDataPoint(s.attrs, s.start, now, s.value, _sdk_exemplars(s.exemplars)) for s in series
    ]
    if kind == GAUGE:
        return Gauge(points)
    return Sum(points, CUMULATIVE, is_monotonic=kind == COUNTER)


def _sdk_exemplars(kept: dict[int, PlainExemplar]) -> list[Exemplar]:
    return [
        Exemplar(
            attrs or None,
            value,
            time_ns,
            int(span_id, 16) if span_id else None,
            int(trace_id, 16) if trace_id else None,
        )
        for value, time_ns, trace_id, span_id, attrs in kept.values()
    ]


def prepare(directory: Path) -> None:
    """Before the workers start (`testboost serve`): check the directory, record this process
    as its server (the workers' parent), and empty it, which a fresh server needs. Raises
    metrics_dir.MetricsDirError, before anything is removed, when it is not ours to use."""
    metrics_dir.check(directory)
    metrics_dir.claim(directory, metrics_dir.identity(os.getpid()) or f"{os.getpid()}-0")
    for pattern in (f"*{SUFFIX}", ".*.tmp"):  # published files, and a killed writer's scratch
        for path in Path(directory).glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
