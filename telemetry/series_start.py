"""Make the first observations of every series count in Prometheus' `rate()` and `increase()`.

Prometheus takes the first sample of a series as its baseline: a counter or histogram series
that first appears already holding N observations contributes 0 for them, in pull and in OTLP
push alike. Two measures:

- **primed** (telemetry/instruments.py): label sets known at start-up (the configured provider
  and model, every workflow type, every route) exist at zero before their first observation.
- **held** (here, applied to each collection before it leaves the process: the /metrics
  renderer and the OTLP exporter call `SeriesStart.apply`): a series nobody could know in
  advance (a status code first seen, say) is shown at zero until `hold` has passed since its
  creation, so every scraper whose interval is shorter than `hold` records a zero first, and
  the observations count from the next sample on. Each cumulative series carries its creation
  time (`start_time_unix_nano`): the rule needs no state, and holds in every worker process
  alike.

Only monotonic series are touched (counters, histograms); a gauge's current value needs no
baseline.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)


class SeriesStart:
    def __init__(self, hold_s: float) -> None:
        self._hold_ns = int(hold_s * 1e9)

    def apply(self, data: MetricsData | None, now_ns: int | None = None) -> MetricsData | None:
        """`data` with held series at zero; `data` itself when nothing changes, as on every
        collection once the series have settled."""
        if data is None:
            return None
        now_ns = time.time_ns() if now_ns is None else now_ns
        changed = False
        resource_metrics = []
        for rm in data.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                metrics = [self._metric(metric, now_ns) for metric in sm.metrics]
                changed |= any(new is not old for new, old in zip(metrics, sm.metrics, strict=True))
                scopes.append(replace(sm, metrics=metrics))
            resource_metrics.append(replace(rm, scope_metrics=scopes))
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
        if not held:
            return metric
        return replace(metric, data=replace(series, data_points=points))  # type: ignore[arg-type]


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
