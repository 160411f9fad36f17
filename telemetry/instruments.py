"""The API's counters and histograms, and the record calls it makes.

Why not the SDK's synchronous instruments: `Counter.add` and `Histogram.record` clean, copy
and hash their attributes and build a `Measurement` on every call: the two a request makes cost
several times what a hand-written prometheus_client middleware pays for everything
(docs/benchmarks.md). Here each series is a small accumulator found by its label values, and
recording is a dict lookup and a few additions under a lock. At collection the series become
the SDK's own data points (`Sum`, `Histogram`, cumulative, as its aggregations would make
them) and join the collection before anything reads it: the /metrics renderer, the worker
merge, the series-start rule and the OTLP exporter see exactly what the SDK would hand them.
The OpenTelemetry API has no asynchronous histogram, so an observable instrument could not
carry these; one mechanism serves both kinds.

What the SDK would do is kept: a series starts at its first observation (or when primed),
with that time as its start; past `cardinality_limit` label sets a family records into one
`otel.metric.overflow=true` series; exemplars go through the SDK's own filter and
reservoirs (the aligned-bucket one for histograms), collected once and then reset.

Except with `keep_exemplars` (what the API runs): each bucket (a counter: its series) then
shows its newest exemplar until a newer one replaces it, as prometheus_client keeps them (the
spec leaves replay across cumulative collections to the SDK). Reset after each collection, an
exemplar would reach Prometheus only if nothing else collected in between: in pull mode a
second scraper, `testboost doctor`, or a worker's once-a-second publication to the others
(telemetry/multiprocess.py) takes it away; in push mode the collector's page shows it for one
export interval, which a scrape may miss, and not at all while the series-start hold zeroes a
new series (telemetry/series_start.py). Prometheus stores an exemplar it has seen once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry import context
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import (
    AlignedHistogramBucketExemplarReservoir,
    AlwaysOffExemplarFilter,
    Exemplar,
    ExemplarFilter,
    ExemplarReservoir,
    SimpleFixedSizeExemplarReservoir,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
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

from telemetry.catalog import (
    CATALOG,
    HTTP_DURATION,
    HTTP_REQUESTS,
    LLM_CALLS,
    LLM_DURATION,
    LLM_ERRORS,
    LLM_RATE_LIMITS,
    WORKFLOW_DURATION,
    WORKFLOWS,
    Kind,
    LLMOutcome,
    MetricFamily,
    WorkflowStatus,
)
from telemetry.mapping import llm_error_type

log = logging.getLogger(__name__)
Reading = Callable[[], float | None]
# The SDK's default cardinality limit and overflow series (spec: metrics SDK, cardinality
# limits): the limit counts the real series; the overflow one comes on top.
CARDINALITY_LIMIT = 2000
OVERFLOW_ATTRIBUTES: dict[str, Any] = {"otel.metric.overflow": True}
_OVERFLOW = ("\0overflow",)  # a key no label tuple can equal: label values are str
CUMULATIVE = AggregationTemporality.CUMULATIVE


class _Series:
    __slots__ = (
        "attributes",
        "buckets",
        "count",
        "kept",
        "max",
        "min",
        "offered",
        "reservoir",
        "start_ns",
        "sum",
        "value",
    )

    def __init__(self, attributes: dict[str, Any], buckets: int, reservoir: Any) -> None:
        self.attributes = attributes
        self.start_ns = time.time_ns()
        self.value = 0  # a counter's
        self.buckets = [0] * buckets  # a histogram's, with its count, sum, min and max
        self.count = 0
        self.sum: float = 0
        self.min = float("inf")
        self.max = float("-inf")
        self.reservoir: ExemplarReservoir | None = reservoir
        self.offered = False  # the reservoir holds something since its last collection
        self.kept: dict[int, Exemplar] = {}  # bucket index -> newest exemplar (keep_exemplars)


class _Family:
    """One counter or histogram family: its series by label values."""

    def __init__(
        self,
        family: MetricFamily,
        limit: int,
        exemplars: ExemplarFilter | None,
        keep_exemplars: bool = False,
    ) -> None:
        self.family = family
        self.bounds = family.buckets
        self.limit = limit
        self.exemplars = exemplars
        self.keep_exemplars = keep_exemplars
        self.series: dict[tuple[str, ...], _Series] = {}
        self.lock = threading.Lock()

    def get(self, values: tuple[str, ...]) -> _Series:
        series = self.series.get(values)
        if series is None:
            with self.lock:
                series = self.series.get(values) or self._create(values)
        return series

    def _create(self, values: tuple[str, ...]) -> _Series:
        if len(self.series) >= self.limit:
            series = self.series.get(_OVERFLOW)
            if series is not None:
                return series
            values, attributes = _OVERFLOW, dict(OVERFLOW_ATTRIBUTES)
        else:
            # Plain str values (a StrEnum member would be a series apart in the SDK's eyes).
            attributes = {k: str(v) for k, v in zip(self.family.labels, values, strict=True)}
        reservoir: ExemplarReservoir | None = None
        if self.exemplars is not None:
            reservoir = (
                AlignedHistogramBucketExemplarReservoir(list(self.bounds))
                if self.family.kind is Kind.HISTOGRAM
                else SimpleFixedSizeExemplarReservoir()
            )
        buckets = len(self.bounds) + 1 if self.family.kind is Kind.HISTOGRAM else 0
        series = self.series[values] = _Series(attributes, buckets, reservoir)
        return series

    def offer(self, series: _Series, value: float) -> None:
        """Exemplars, as the SDK offers them: filtered on the current context. Called with
        the lock held, as `collect` reads and resets the reservoir."""
        assert self.exemplars is not None and series.reservoir is not None
        now, ctx = time.time_ns(), context.get_current()
        if self.exemplars.should_sample(value, now, series.attributes, ctx):
            series.reservoir.offer(value, now, series.attributes, ctx)
            series.offered = True

    def add(self, amount: int, values: tuple[str, ...]) -> None:
        series = self.get(values)
        with self.lock:
            series.value += amount
            if self.exemplars is not None and amount:
                self.offer(series, amount)

    def record(self, value: float, values: tuple[str, ...]) -> None:
        if not 0 <= value < math.inf:  # as the SDK's Histogram: NaN, infinite, negative
            log.warning("%s: %r is not a duration, ignored", self.family.name, value)
            return
        series = self.get(values)
        index = bisect_left(self.bounds, value)  # bucket i holds (bound[i-1], bound[i]]
        with self.lock:
            series.buckets[index] += 1
            series.count += 1
            series.sum += value
            if value < series.min:
                series.min = value
            if value > series.max:
                series.max = value
            if self.exemplars is not None:
                self.offer(series, value)

    def _keep(self, series: _Series, fresh: list[Exemplar]) -> list[Exemplar]:
        """The series' newest exemplar per bucket, fresh ones (newer than any kept) in."""
        histogram = self.family.kind is Kind.HISTOGRAM
        for exemplar in fresh:
            series.kept[bisect_left(self.bounds, exemplar.value) if histogram else 0] = exemplar
        return list(series.kept.values())

    def collect(self, now_ns: int) -> Metric:
        family = self.family
        points: list[Any] = []
        with self.lock:
            for series in self.series.values():
                exemplars: list[Exemplar] = []
                if series.offered and series.reservoir is not None:
                    # Collecting an empty reservoir costs a lock and a sort: skipped.
                    exemplars = series.reservoir.collect(series.attributes)
                    series.offered = False
                if self.keep_exemplars and (exemplars or series.kept):
                    exemplars = self._keep(series, exemplars)
                if family.kind is Kind.COUNTER:
                    points.append(
                        NumberDataPoint(
                            series.attributes, series.start_ns, now_ns, series.value, exemplars
                        )
                    )
                    continue
                observed = series.count > 0
                points.append(
                    HistogramDataPoint(
                        attributes=series.attributes,
                        start_time_unix_nano=series.start_ns,
                        time_unix_nano=now_ns,
                        count=series.count,
                        sum=series.sum,
                        bucket_counts=tuple(series.buckets),
                        explicit_bounds=self.bounds,
                        min=series.min if observed else 0,
                        max=series.max if observed else 0,
                        exemplars=exemplars,
                    )
                )
        data: Any = (
            Sum(points, CUMULATIVE, is_monotonic=True)
            if family.kind is Kind.COUNTER
            else Histogram(points, CUMULATIVE)
        )
        return Metric(family.otel_name, family.description, family.unit, data)


class Instruments:
    """Every counter and histogram of the catalog; `collect` adds them to a collection."""

    def __init__(
        self,
        scope_name: str,
        resource: Resource,
        exemplars: ExemplarFilter | None = None,
        cardinality_limit: int = CARDINALITY_LIMIT,
        keep_exemplars: bool = False,
    ) -> None:
        self._scope_name = scope_name
        self._resource = resource
        if isinstance(exemplars, AlwaysOffExemplarFilter):
            exemplars = None
        self._families = {
            family.name: _Family(family, cardinality_limit, exemplars, keep_exemplars)
            for family in CATALOG
            if family.kind in (Kind.COUNTER, Kind.HISTOGRAM) and not family.observed
        }
        self._http_count = self._families[HTTP_REQUESTS.name]
        self._http_duration = self._families[HTTP_DURATION.name]

    def prime(
        self,
        provider: str,
        model: str,
        workflow_types: Iterable[str],
        routes: Iterable[Sequence[str]] = (),
    ) -> None:
        """Start every known series at 0. Prometheus' increase() cannot see events that
        happen before a series' first scrape, and a dashboard shows "no data" where it should
        show 0: a first rate limit after start-up would otherwise be missed. `routes`:
        (method, path) label sets of HTTP_DURATION."""
        families = self._families
        families[LLM_CALLS.name].get((provider, model))
        families[LLM_RATE_LIMITS.name].get((provider,))
        families[LLM_DURATION.name].get((provider,))
        for outcome in LLMOutcome:
            error_type = llm_error_type(outcome)
            if error_type is not None:
                families[LLM_ERRORS.name].get((provider, error_type))
        for workflow_type in workflow_types:
            families[WORKFLOW_DURATION.name].get((workflow_type,))
            for status in WorkflowStatus:
                families[WORKFLOWS.name].get((workflow_type, status))
        for method, path in routes:
            self._http_duration.get((method, path))

    def http_request(self, method: str, path: str, status: str, seconds: float) -> None:
        self._http_count.add(1, (method, path, status))
        self._http_duration.record(seconds, (method, path))

    def llm_attempt(self, provider: str, model: str, outcome: str, seconds: float) -> None:
        self._families[LLM_CALLS.name].add(1, (provider, model))
        self._families[LLM_DURATION.name].record(seconds, (provider,))
        error_type = llm_error_type(outcome)
        if error_type is None:
            return
        self._families[LLM_ERRORS.name].add(1, (provider, error_type))
        if error_type == LLMOutcome.RATE_LIMIT:
            self._families[LLM_RATE_LIMITS.name].add(1, (provider,))

    def workflow_finished(self, workflow_type: str, status: str, seconds: float) -> None:
        self._families[WORKFLOWS.name].add(1, (workflow_type, status))
        self._families[WORKFLOW_DURATION.name].record(seconds, (workflow_type,))

    def collect(self, data: MetricsData | None, now_ns: int | None = None) -> MetricsData:
        """`data` (a collection of the SDK's) with these families added to our scope."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        ours = [family.collect(now_ns) for family in self._families.values()]
        ours = [metric for metric in ours if metric.data.data_points]
        if data is None or not data.resource_metrics:
            data = MetricsData([ResourceMetrics(self._resource, [], "")])
        first, *rest = data.resource_metrics
        scopes = list(first.scope_metrics)
        for index, scope in enumerate(scopes):
            if scope.scope.name == self._scope_name:
                scopes[index] = replace(scope, metrics=[*scope.metrics, *ours])
                break
        else:
            scopes.append(ScopeMetrics(InstrumentationScope(self._scope_name), ours, ""))
        return MetricsData([replace(first, scope_metrics=scopes), *rest])


def observe(meter: Meter, family: MetricFamily, read: Reading) -> None:
    """An observable gauge for a label-less family whose value `read` returns on collection
    (None skips the point, e.g. while the database is unreachable)."""
    assert family.kind is Kind.GAUGE and not family.labels

    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        value = read()
        return [] if value is None else [Observation(value)]

    meter.create_observable_gauge(
        family.otel_name, callbacks=[callback], unit=family.unit, description=family.description
    )
