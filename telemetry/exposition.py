"""The Prometheus text exposition (format 0.0.4) rendered straight from the SDK's MetricsData.

Why not PrometheusMetricReader + prometheus_client's `generate_latest`: for each scrape that
path builds a prometheus_client `Metric` and a `Sample` per line, then sorts, escapes and joins
every label set again: slower than prometheus_client's own instruments for the same series,
and a scrape's cost grows with every label set. This renderer takes a fraction of either
(docs/benchmarks.md, `make bench`).

This reader keeps OpenTelemetry's model and its collection (`MetricReader.collect`, views,
cardinality limits, callbacks) and changes only the formatting: each series' label string, and
for histograms each `_bucket{...,le="..."} ` prefix, is built once per series and reused while
the series exists, so a scrape costs a dict lookup and a number per line. Output matches the
exporter's naming (unit suffix, `_total`), HELP/TYPE lines, cumulative `le` buckets with
`+Inf`, `_count` and `_sum`, and label value escaping (backslash, double quote, newline).
The text may start with a comment line for people reading it (`# TestBoost: …`, the
series-start hold, telemetry/series_start.py): parsers ignore `#` lines other than HELP/TYPE.
A point's labels are its own attributes, sorted by name; the exporter also pads each point
with the family's other label names set to "", which Prometheus reads as "absent" anyway.
The SDK's cardinality overflow point (`otel.metric.overflow=true`) comes out as
`otel_metric_overflow="true"`.

OpenMetrics 1.0 (`render(..., openmetrics=True)`, what Prometheus asks for first) is the same
lines with exemplars: a counter family is named without `_total` in its HELP/TYPE lines (its
samples keep it), HELP escapes double quotes too, a histogram bucket or a counter sample whose
point carries an exemplar ends with `# {trace_id="…",span_id="…"} value timestamp` (the newest
exemplar of that bucket; labels past OpenMetrics' 128 characters left out), and the text ends
with `# EOF`. Exemplars exist only in this format: the 0.0.4 text is unchanged by them. Its
grammar has no free comments: the comment line is left out.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Callable, Mapping
from functools import partial
from itertools import accumulate
from json import dumps
from operator import is_not
from typing import Any

from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    CardinalityLimits,
    Gauge,
    Histogram,
    MetricReader,
    MetricsData,
    Sum,
)

from telemetry._compat import floatToGoString, sanitize_attribute
from telemetry.mapping import prometheus_name

__all__ = [
    "CONTENT_TYPE",
    "OPENMETRICS_CONTENT_TYPE",
    "NotedTransform",
    "PrometheusTextReader",
    "render",
    "wants_openmetrics",
]

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
OPENMETRICS = "application/openmetrics-text"
# OpenMetrics 1.0, Exemplars: label names and values together at most 128 code points.
EXEMPLAR_LABELS_MAX = 128
# The collection to format, and a comment line to start the 0.0.4 text with ("": none).
NotedTransform = Callable[[MetricsData | None], tuple[MetricsData | None, str]]


class PrometheusTextReader(MetricReader):
    """A pull MetricReader whose `render()` collects and returns the text exposition.
    `produce`, when given, adds to each collection what the SDK does not hold (the recorded
    families, telemetry/instruments.py); `transform` then rewrites it before it is formatted
    (the merge of several workers' collections, the series-start rule and its comment)."""

    def __init__(
        self,
        cardinality_limits: CardinalityLimits | None = None,
        transform: NotedTransform | None = None,
        produce: Callable[[MetricsData | None], MetricsData | None] | None = None,
    ) -> None:
        # Cumulative for every instrument kind is the SDK's default, and what Prometheus wants.
        super().__init__(cardinality_limits=cardinality_limits)
        self._lock = threading.Lock()
        self._latest: MetricsData | None = None
        self._cache = SeriesCache()
        self._render_lock = threading.Lock()
        self._transform = transform
        self._produce = produce

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._latest = metrics_data

    def snapshot(self) -> MetricsData | None:
        """Collect now (runs observable callbacks) and return the collection as it is."""
        with self._lock:
            self.collect()
            data, self._latest = self._latest, None
            return self._produce(data) if self._produce is not None else data

    def render(self, openmetrics: bool = False) -> bytes:
        """Collect, transform and format (the 0.0.4 text, or OpenMetrics with exemplars).
        Concurrent scrapes take turns: the cache is not shared between renders."""
        with self._render_lock:
            data, comment = self.snapshot(), ""
            if self._transform is not None:
                data, comment = self._transform(data)
            return render(data, self._cache, openmetrics, comment).encode()

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._latest = None


class SeriesCache:
    """Per exposed metric name, per series: the formatted label parts, keyed by the identity
    of the point's attributes mapping. The SDK hands out the same mapping for a series at
    every collection (it is stored with the series' aggregation), so a hit costs an `id()`
    and a dict lookup; the entry holds the mapping, so its id cannot be reused meanwhile.
    Only the series present in the latest render are kept: memory follows the live series,
    which the SDK's cardinality limit bounds."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[int, tuple[Any, Any]]] = {}
        # OpenMetrics: per series (id of its attributes), the exemplars last rendered and
        # their formatted tails. The API keeps a bucket's exemplar object until a newer one
        # replaces it (telemetry/instruments.py), so most scrapes find them here.
        self.tails: dict[int, tuple[tuple[Exemplar, ...], Any]] = {}
        self.fresh_tails: dict[int, tuple[tuple[Exemplar, ...], Any]] = {}


def wants_openmetrics(accept: str) -> bool:
    """Whether a scraper's Accept header prefers OpenMetrics 1.0 (or 0.0.1, which the 1.0 text
    satisfies: prometheus_client answers both alike) to the 0.0.4 text. Prometheus 2.x and 3.x
    list OpenMetrics first, with the highest q; a missing or plain header gets the text."""
    best_openmetrics = best_text = 0.0
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        options = dict(p.partition("=")[::2] for p in params)
        try:
            q = float(options.get("q", "1"))
        except ValueError:
            continue
        media = media.lower()
        if media == OPENMETRICS and options.get("version", "1.0.0") in ("1.0.0", "0.0.1"):
            best_openmetrics = max(best_openmetrics, q)
        elif media in ("text/plain", "*/*", "text/*"):
            best_text = max(best_text, q)
    return best_openmetrics > 0 and best_openmetrics >= best_text


def render(
    data: MetricsData | None,
    cache: SeriesCache | None = None,
    openmetrics: bool = False,
    comment: str = "",
) -> str:
    """The exposition of `data`; the 0.0.4 text starts with `comment` (a `# ` line or "")."""
    cache = cache if cache is not None else SeriesCache()
    out: list[str] = [] if openmetrics or not comment else [comment]
    seen: dict[str, str] = {}  # exposed name -> type, to refuse a second family of that name
    fresh: dict[str, dict[int, tuple[Any, Any]]] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points = metric.data.data_points
                kind = _kind(metric.data)
                if kind is None:
                    log.warning("%s: %s is not exposed", metric.name, type(metric.data).__name__)
                    continue
                name = prometheus_name(metric.name, metric.unit or "", kind)
                if name in seen:
                    # Two families of one name make Prometheus reject the whole scrape.
                    log.warning("%s: a second family of this name is not exposed", name)
                    continue
                seen[name] = kind
                help_text = (metric.description or "").replace("\\", r"\\").replace("\n", r"\n")
                family = name
                if openmetrics:
                    help_text = help_text.replace('"', r"\"")
                    if kind == "counter" and name.endswith("_total"):
                        family = name[: -len("_total")]
                out.append(f"# HELP {family} {help_text}\n# TYPE {family} {kind}\n")
                old = cache.entries.get(name, {})
                new: dict[int, tuple[Any, Any]] = {}
                fresh[name] = new
                tails = cache if openmetrics else None
                if kind == "histogram":
                    _histogram_lines(out, name, points, old, new, tails)
                else:
                    counter = tails if kind == "counter" else None
                    _number_lines(out, name, points, old, new, counter)
    cache.entries = fresh
    if openmetrics:
        cache.tails, cache.fresh_tails = cache.fresh_tails, {}
        out.append("# EOF\n")
    return "".join(out)


def _kind(data: Any) -> str | None:
    if isinstance(data, Sum):
        # Prometheus compatibility spec: cumulative non-monotonic sums are gauges.
        cumulative = data.aggregation_temporality == AggregationTemporality.CUMULATIVE
        return "gauge" if (cumulative and not data.is_monotonic) else "counter"
    if isinstance(data, Gauge):
        return "gauge"
    if isinstance(data, Histogram):
        return "histogram"
    return None


def _number_lines(
    out: list[str],
    name: str,
    points: Any,
    old: dict[int, tuple[Any, Any]],
    new: dict[int, tuple[Any, Any]],
    tails: SeriesCache | None = None,
) -> None:
    append = out.append
    for point in points:
        attrs = point.attributes
        entry = old.get(id(attrs))
        if entry is None or entry[0] is not attrs:
            labels = _join(_label_pairs(attrs))
            entry = (attrs, f"{name}{{{labels}}} " if labels else f"{name} ")
        new[id(attrs)] = entry
        if tails is not None and point.exemplars:
            tail = _tails(tails, attrs, point.exemplars, _newest_tail)
            append(f"{entry[1]}{_value(point.value)}{tail}\n")
        else:
            append(f"{entry[1]}{_value(point.value)}\n")


def _histogram_lines(
    out: list[str],
    name: str,
    points: Any,
    old: dict[int, tuple[Any, Any]],
    new: dict[int, tuple[Any, Any]],
    tails: SeriesCache | None = None,
) -> None:
    append = out.append
    for point in points:
        attrs = point.attributes
        bounds = point.explicit_bounds
        entry = old.get(id(attrs))
        if entry is None or entry[0] is not attrs or tuple(entry[1][0]) != tuple(bounds):
            entry = (attrs, _histogram_prefixes(name, attrs, bounds))
        new[id(attrs)] = entry
        _bounds, buckets, count_prefix, sum_prefix = entry[1]
        cumulative = list(accumulate(point.bucket_counts))
        if tails is not None and point.exemplars:
            by_bucket = _tails(tails, attrs, point.exemplars, partial(_bucket_tails, bounds))
            for index, (prefix, count) in enumerate(zip(buckets, cumulative, strict=True)):
                append(f"{prefix}{_value(count)}{by_bucket.get(index, '')}\n")
        else:
            for prefix, count in zip(buckets, cumulative, strict=True):
                append(f"{prefix}{_value(count)}\n")
        # A histogram with negative boundaries has no meaningful sum (prometheus_client, too).
        if not bounds or bounds[0] >= 0:
            append(f"{count_prefix}{_value(cumulative[-1])}\n{sum_prefix}{_value(point.sum)}\n")


def _tails(cache: SeriesCache, attrs: Any, exemplars: Any, make: Callable[[Any], Any]) -> Any:
    """`make(exemplars)`, or what it made last time for the same exemplar objects."""
    held = tuple(exemplars)
    known = cache.tails.get(id(attrs))
    if known is None or len(known[0]) != len(held) or any(map(is_not, known[0], held)):
        known = (held, make(held))
    cache.fresh_tails[id(attrs)] = known
    return known[1]


def _newest_tail(exemplars: Any) -> str:
    return _exemplar(max(exemplars, key=_exemplar_time))


def _bucket_tails(bounds: Any, exemplars: Any) -> dict[int, str]:
    """The newest exemplar of each bucket, formatted (bucket i holds (bound[i-1], bound[i]],
    as the SDK's aligned reservoir files them)."""
    found: dict[int, Exemplar] = {}
    for exemplar in sorted(exemplars, key=_exemplar_time):
        found[bisect_left(bounds, exemplar.value)] = exemplar
    return {index: _exemplar(exemplar) for index, exemplar in found.items()}


def _exemplar_time(exemplar: Exemplar) -> int:
    return exemplar.time_unix_nano


def _exemplar(exemplar: Exemplar) -> str:
    """` # {trace_id="…",span_id="…"} value timestamp`, or "" when nothing links it anywhere.
    The trace context comes first; other (filtered) attributes follow while the label set
    stays within OpenMetrics' 128 characters."""
    pairs: list[tuple[str, str]] = []
    if exemplar.trace_id:
        pairs.append(("trace_id", format(exemplar.trace_id, "032x")))
    if exemplar.span_id:
        pairs.append(("span_id", format(exemplar.span_id, "016x")))
    length = sum(len(key) + len(value) for key, value in pairs)
    for key, value in sorted((exemplar.filtered_attributes or {}).items()):
        name, text = sanitize_attribute(key), value if isinstance(value, str) else str(value)
        if length + len(name) + len(text) <= EXEMPLAR_LABELS_MAX:
            pairs.append((name, text))
            length += len(name) + len(text)
    if not pairs:
        return ""
    labels = ",".join(f'{key}="{_label_value(value)}"' for key, value in pairs)
    nanos = exemplar.time_unix_nano
    return f" # {{{labels}}} {_value(exemplar.value)} {nanos // 10**9}.{nanos // 10**6 % 1000:03d}"


def _histogram_prefixes(
    name: str, attrs: Mapping[str, Any] | None, bounds: Any
) -> tuple[Any, list[str], str, str]:
    pairs = _label_pairs(attrs)
    # `le` sorted in among the other labels, as prometheus_client writes it.
    buckets = [
        f"{name}_bucket{{{_join(sorted([*pairs, ('le', floatToGoString(bound))]))}}} "
        for bound in (*bounds, float("inf"))
    ]
    labels = _join(pairs)
    tail = f"{{{labels}}} " if labels else " "
    return tuple(bounds), buckets, f"{name}_count{tail}", f"{name}_sum{tail}"


def _label_pairs(attrs: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if not attrs:
        return []
    pairs = {sanitize_attribute(key): _label_value(value) for key, value in attrs.items()}
    return sorted(pairs.items())


def _join(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f'{key}="{value}"' for key, value in pairs)


def _label_value(value: Any) -> str:
    text = value if isinstance(value, str) else dumps(value, default=str)
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _value(value: float) -> str:
    # floatToGoString's output for an integer below 10**6 is "<int>.0": skip the float repr.
    if value.__class__ is int and -1_000_000 < value < 1_000_000:
        return f"{value}.0"
    return str(floatToGoString(value))
