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
baseline. A newcomer who reads /metrics right after using the API would see zeros and wonder:
`apply_noted` also returns a comment line saying how many series are held and until when, which
the 0.0.4 text starts with (OpenMetrics has no free comments).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)

DOCS = "docs/metrics.md#first-observations"


@dataclass
class _Held:
    """What one pass held: how many series, and the latest creation time among them."""

    count: int = 0
    newest_start_ns: int = 0


class SeriesStart:
    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self._hold_ns = int(hold_s * 1e9)

    def apply(self, data: MetricsData | None, now_ns: int | None = None) -> MetricsData | None:
        """`data` with held series at zero; `data` itself when nothing changes, as on every
        collection once the series have settled."""
        return self._apply(data, now_ns, _Held())

    def apply_noted(
        self, data: MetricsData | None, now_ns: int | None = None
    ) -> tuple[MetricsData | None, str]:
        """`apply`, and a comment line for people reading the exposition ("" when nothing is
        held): counted in the same walk, so a scrape pays nothing more for it."""
        held = _Held()
        data = self._apply(data, now_ns, held)
        if not held.count:
            return data, ""
        until = time.gmtime(math.ceil((held.newest_start_ns + self._hold_ns) / 1e9))
        return data, (
            f"# TestBoost: {held.count} new series read 0 until {time.strftime('%H:%M:%S', until)}"
            f" UTC (held {seconds_text(self.hold_s)} s so Prometheus records their start; {DOCS})\n"
        )

    def _apply(
        self, data: MetricsData | None, now_ns: int | None, held: _Held
    ) -> MetricsData | None:
        if data is None:
            return None
        now_ns = time.time_ns() if now_ns is None else now_ns
        changed = False
        resource_metrics = []
        for rm in data.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                metrics = [self._metric(metric, now_ns, held) for metric in sm.metrics]
                changed |= any(new is not old for new, old in zip(metrics, sm.metrics, strict=True))
                scopes.append(replace(sm, metrics=metrics))
            resource_metrics.append(replace(rm, scope_metrics=scopes))
        return MetricsData(resource_metrics) if changed else data

    def _metric(self, metric: Metric, now_ns: int, held: _Held) -> Metric:
        series = metric.data
        if isinstance(series, Histogram):
            zero: Any = _zero_histogram_point
        elif isinstance(series, Sum) and series.is_monotonic:
            zero = _zero_number_point
        else:
            return metric
        points: list[Any] = list(series.data_points)
        before = held.count
        for index, point in enumerate(points):
            start = point.start_time_unix_nano
            if now_ns - start < self._hold_ns and _nonzero(point):
                points[index] = zero(point)
                held.count += 1
                held.newest_start_ns = max(held.newest_start_ns, start)
        if held.count == before:
            return metric
        return replace(metric, data=replace(series, data_points=points))  # type: ignore[arg-type]


def seconds_text(seconds: float) -> str:
    """Seconds as a plain decimal, to the millisecond the hold is set in: 30, 22.5, 0."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


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
