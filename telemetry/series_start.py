"""Make the first observations of every series count in Prometheus' `rate()` and `increase()`.

Prometheus takes the first sample of a series as its baseline: a counter or histogram series
that first appears already holding N observations contributes 0 for them, in pull and in OTLP
push alike. Two measures, applied to each collection before it leaves the process (the /metrics
renderer and the OTLP exporter call `SeriesStart.apply`):

- **primed**: label sets known at start-up (the configured provider and model, every workflow
  type, every route) are there at zero before their first observation. Counters are primed in
  the SDK (`add(0)`); a histogram cannot be, so its zero points are added here.
- **held**: a series nobody could know in advance (a status code first seen, say) is shown at
  zero until `hold` has passed since its creation, so every scraper whose interval is shorter
  than `hold` records a zero first, and the observations count from the next sample on. The
  SDK stamps each cumulative series with its creation time (`start_time_unix_nano`): the rule
  needs no state, and holds in every worker process alike.

Only monotonic series are touched (counters, histograms); a gauge's current value needs no
baseline.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

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

from telemetry.catalog import Kind, MetricFamily

Attributes = Mapping[str, str]


class SeriesStart:
    def __init__(self, scope_name: str, hold_s: float) -> None:
        self._scope_name = scope_name
        self._hold_ns = int(hold_s * 1e9)
        self._started_ns = time.time_ns()
        # histogram instrument name -> (family, label sets to show at zero until observed)
        self._primed: dict[str, tuple[MetricFamily, dict[frozenset[Any], Attributes]]] = {}

    def prime(self, family: MetricFamily, label_sets: Iterable[Sequence[str]]) -> None:
        """Show these label sets of a histogram family at zero until they are observed."""
        assert family.kind is Kind.HISTOGRAM, family.name
        _family, known = self._primed.setdefault(family.otel_name, (family, {}))
        for values in label_sets:
            attrs = dict(zip(family.labels, values, strict=True))
            known[frozenset(attrs.items())] = attrs

    def apply(self, data: MetricsData | None, now_ns: int | None = None) -> MetricsData | None:
        """`data` with held series at zero and primed ones added where missing; `data` itself
        when nothing changes, as on every collection once the series have settled."""
        if data is None or not data.resource_metrics:
            if not self._primed:
                return data
            data = MetricsData([ResourceMetrics(Resource.get_empty(), [], "")])
        now_ns = time.time_ns() if now_ns is None else now_ns
        missing = set(self._primed)  # primed families the collection holds no metric of
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                missing.difference_update(metric.name for metric in sm.metrics)
        # Added to our own scope: an exporter may keep one scope of a name (vmagent does).
        primed = [self._primed_metric(name, set(), now_ns) for name in sorted(missing)]
        primed = [metric for metric in primed if metric.data.data_points]
        changed = False
        resource_metrics = []
        for rm in data.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                metrics = [self._metric(metric, now_ns) for metric in sm.metrics]
                changed |= any(new is not old for new, old in zip(metrics, sm.metrics, strict=True))
                if primed and sm.scope.name == self._scope_name:
                    metrics += primed
                    primed, changed = [], True
                scopes.append(replace(sm, metrics=metrics))
            resource_metrics.append(replace(rm, scope_metrics=scopes))
        if primed:  # nothing of our scope collected yet
            first = resource_metrics[0]
            scope = ScopeMetrics(InstrumentationScope(self._scope_name), primed, "")
            resource_metrics[0] = replace(first, scope_metrics=[*first.scope_metrics, scope])
            changed = True
        return MetricsData(resource_metrics) if changed else data

    def _metric(self, metric: Metric, now_ns: int) -> Metric:
        series = metric.data
        if isinstance(series, Histogram):
            zero: Any = _zero_histogram_point
        elif isinstance(series, Sum) and series.is_monotonic:
            zero = _zero_number_point
        else:
            return metric
        points: list[Any] = list(series.data_points)
        held = False
        for index, point in enumerate(points):
            if now_ns - point.start_time_unix_nano < self._hold_ns and _nonzero(point):
                points[index] = zero(point)
                held = True
        if metric.name in self._primed:
            present = {frozenset((point.attributes or {}).items()) for point in points}
            primed = self._primed_metric(metric.name, present, now_ns)
            if primed.data.data_points:
                points.extend(primed.data.data_points)
                held = True
        if not held:
            return metric
        return replace(metric, data=replace(series, data_points=points))  # type: ignore[arg-type]

    def _primed_metric(self, name: str, present: set[frozenset[Any]], now_ns: int) -> Metric:
        """The primed label sets of histogram `name` that are not `present`, at zero."""
        family, known = self._primed[name]
        points = [
            HistogramDataPoint(
                attributes=attrs,
                start_time_unix_nano=self._started_ns,
                time_unix_nano=now_ns,
                count=0,
                sum=0,
                bucket_counts=[0] * (len(family.buckets) + 1),
                explicit_bounds=list(family.buckets),
                min=0,
                max=0,
            )
            for key, attrs in known.items()
            if key not in present
        ]
        return Metric(
            name=name,
            description=family.description,
            unit=family.unit,
            data=Histogram(points, AggregationTemporality.CUMULATIVE),
        )


def _nonzero(point: Any) -> bool:
    return bool(point.count if isinstance(point, HistogramDataPoint) else point.value)


def _zero_number_point(point: NumberDataPoint) -> NumberDataPoint:
    return replace(point, value=0, exemplars=[])


def _zero_histogram_point(point: HistogramDataPoint) -> HistogramDataPoint:
    return replace(
        point,
        count=0,
        sum=0,
        bucket_counts=[0] * len(point.bucket_counts),
        min=0,
        max=0,
        exemplars=[],
    )
