"""Scrape micro-benchmark: /metrics rendering for N HTTP label sets (plus every other family the
API exposes), ours against prometheus_client's `generate_latest` on its own instruments holding
the same series and values, and against the exporter path we used before (PrometheusMetricReader
+ generate_latest). In-process, no HTTP: this times the work a scrape does.

    python -m bench.scrape --series 1000 10000
    python -m bench.scrape --openmetrics 1000   # the 0.0.4 text against OpenMetrics + exemplars
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import prometheus_client
from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, TraceBasedExemplarFilter
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.parser import text_string_to_metric_families

from app.workflows.definitions import SessionType
from telemetry.catalog import BY_NAME, CATALOG, LLM_ERROR_TYPES, WORKFLOW_STATUSES, Kind
from telemetry.exposition import PrometheusTextReader
from telemetry.instruments import Instruments, observe
from telemetry.mapping import KNOWN_METHODS

METHODS = sorted(KNOWN_METHODS)
STATUSES = ("200", "201", "204", "400", "404", "409", "422", "500")
WORKFLOW_TYPES = tuple(t.value for t in SessionType)


class ClientMirror:
    """The catalog's families as prometheus_client instruments, fed the same calls."""

    def __init__(self) -> None:
        # Our exposition has no `_created` series; compare like with like.
        prometheus_client.disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics: dict[str, Any] = {}
        for family in CATALOG:
            if family.observed:
                continue  # the runtime families: Instruments does not hold them either
            if family.kind is Kind.COUNTER:
                metric: Any = prometheus_client.Counter(
                    family.name, family.description, family.labels, registry=self.registry
                )
            elif family.kind is Kind.HISTOGRAM:
                metric = prometheus_client.Histogram(
                    family.name,
                    family.description,
                    family.labels,
                    registry=self.registry,
                    buckets=family.buckets,
                )
            else:
                metric = prometheus_client.Gauge(
                    family.name, family.description, registry=self.registry
                )
            self.metrics[family.name] = metric

    def touch(self, family: str, *labels: str) -> None:
        self.metrics[family].labels(*labels)

    def add(self, family: str, amount: float, *labels: Any) -> None:
        *names, exemplar = labels if labels and isinstance(labels[-1], dict) else (*labels, None)
        self.metrics[family].labels(*names).inc(amount, exemplar=exemplar)

    def record(self, family: str, value: float, *labels: Any) -> None:
        *names, exemplar = labels if labels and isinstance(labels[-1], dict) else (*labels, None)
        self.metrics[family].labels(*names).observe(value, exemplar=exemplar)

    def set(self, family: str, value: float) -> None:
        self.metrics[family].set(value)


class SdkMirror:
    """The recorded families as the SDK's own instruments (the exporter path's input)."""

    def __init__(self, meter: Any) -> None:
        self.families = {f.name: f for f in CATALOG if not f.observed and f.kind is not Kind.GAUGE}
        self.made: dict[str, Any] = {
            f.name: meter.create_counter(f.otel_name, unit=f.unit, description=f.description)
            if f.kind is Kind.COUNTER
            else meter.create_histogram(
                f.otel_name,
                unit=f.unit,
                description=f.description,
                explicit_bucket_boundaries_advisory=f.buckets,
            )
            for f in self.families.values()
        }

    def _attrs(self, family: str, labels: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self.families[family].labels, labels, strict=True))

    def touch(self, family: str, *labels: str) -> None:
        self.made[family].add(0, self._attrs(family, labels))

    def add(self, family: str, amount: float, *labels: str) -> None:
        self.made[family].add(amount, self._attrs(family, labels))

    def record(self, family: str, value: float, *labels: str) -> None:
        self.made[family].record(value, self._attrs(family, labels))


@dataclass
class Setup:
    ours: PrometheusTextReader
    before_registry: CollectorRegistry
    client: ClientMirror


def build(series: int, exemplars: bool = False) -> Setup:
    """`exemplars`: every HTTP observation under a sampled span (the worst case: every bucket
    observed and every counter series hold one), kept as the API keeps them; the
    prometheus_client mirror gets the same trace context as its exemplars."""
    limit = series + 100  # above the default of 2000: the point is to render them all
    limits: dict[type, int] = {Counter: limit, Histogram: limit}
    instruments = Instruments(
        "testboost",
        Resource.get_empty(),
        TraceBasedExemplarFilter() if exemplars else None,
        cardinality_limit=limit,
        keep_exemplars=exemplars,
    )
    ours = PrometheusTextReader(produce=instruments.collect)
    before_registry = CollectorRegistry(auto_describe=False)
    before = PrometheusMetricReader(
        disable_target_info=True,
        scope_info_enabled=False,
        registry=before_registry,
        cardinality_limits=limits,
    )
    meter = MeterProvider(metric_readers=[ours]).get_meter("testboost")
    sdk_meter = MeterProvider(metric_readers=[before]).get_meter("testboost")
    sdk = SdkMirror(sdk_meter)
    client = ClientMirror()
    gauges = {
        "testboost_active_sessions": 3.0,
        "testboost_db_connection_pool_size": 2.0,
        "testboost_db_connection_pool_max": 20.0,
    }
    for name, value in gauges.items():
        observe(meter, BY_NAME[name], _constant(value))
        observe(sdk_meter, BY_NAME[name], _constant(value))
        client.set(name, value)
    mirrors = (client, sdk)

    # Counters primed at 0, as the app does at start-up.
    instruments.prime("simulated", "gpt-4o-mini", WORKFLOW_TYPES)
    for mirror in mirrors:
        mirror.touch("testboost_llm_calls_total", "simulated", "gpt-4o-mini")
        mirror.touch("testboost_llm_rate_limit_total", "simulated")
        for error_type in LLM_ERROR_TYPES:
            mirror.touch("testboost_llm_errors_total", "simulated", error_type)
        for workflow_type in WORKFLOW_TYPES:
            for status in WORKFLOW_STATUSES:
                mirror.touch("testboost_workflow_total", workflow_type, status)

    for i, (outcome, seconds) in enumerate([("success", 0.4), ("rate_limit", 0.02)] * 5):
        instruments.llm_attempt("simulated", "gpt-4o-mini", outcome, seconds + i / 100)
        for mirror in mirrors:
            mirror.add("testboost_llm_calls_total", 1, "simulated", "gpt-4o-mini")
            mirror.record("testboost_llm_request_duration_seconds", seconds + i / 100, "simulated")
            if outcome != "success":
                mirror.add("testboost_llm_errors_total", 1, "simulated", outcome)
                mirror.add("testboost_llm_rate_limit_total", 1, "simulated")
    for workflow_type in WORKFLOW_TYPES:
        instruments.workflow_finished(workflow_type, "completed", 42.0)
        for mirror in mirrors:
            mirror.add("testboost_workflow_total", 1, workflow_type, "completed")
            mirror.record("testboost_workflow_duration_seconds", 42.0, workflow_type)

    for i in range(series):
        method, path = METHODS[i % len(METHODS)], f"/api/v2/route{i}/{{id}}"
        status = STATUSES[i % len(STATUSES)]
        for seconds in (0.003, 0.04, 0.7 + i % 7):
            span = _sampled_span(i) if exemplars else trace.INVALID_SPAN
            with trace.use_span(span):
                instruments.http_request(method, path, status, seconds)
            for mirror in mirrors:
                if exemplars and mirror is client:
                    context = span.get_span_context()
                    link = {
                        "trace_id": format(context.trace_id, "032x"),
                        "span_id": format(context.span_id, "016x"),
                    }
                    client.add("testboost_http_requests_total", 1, method, path, status, link)
                    client.record(
                        "testboost_http_request_duration_seconds", seconds, method, path, link
                    )
                    continue
                mirror.add("testboost_http_requests_total", 1, method, path, status)
                mirror.record("testboost_http_request_duration_seconds", seconds, method, path)
    return Setup(ours, before_registry, client)


def _sampled_span(index: int) -> trace.Span:
    context = SpanContext(
        trace_id=0x5B8EFFF798038103D269B633813FC60C + index,
        span_id=0xEEE19B7EC3C1B174 + index,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return NonRecordingSpan(context)


def _constant(value: float) -> Callable[[], float]:
    return lambda: value


def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def timed(render: Callable[[], bytes], runs: int) -> tuple[float, bytes]:
    """Median seconds over `runs` renders (after one untimed render that fills caches)."""
    body = render()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        body = render()
        times.append(time.perf_counter() - started)
    return statistics.median(times), body


def run(series_counts: list[int], runs: int = 5) -> list[dict[str, Any]]:
    rows = []
    for series in series_counts:
        setup = build(series)
        cold_started = time.perf_counter()
        setup.ours.render()
        cold = time.perf_counter() - cold_started
        ours, body = timed(setup.ours.render, runs)
        client, client_body = timed(partial(generate_latest, setup.client.registry), runs)
        before, _ = timed(partial(generate_latest, setup.before_registry), max(1, runs // 2))
        started = time.perf_counter()
        zipped = gzip.compress(body, compresslevel=1)
        gzip_s = time.perf_counter() - started
        same = samples(body.decode()) == samples(client_body.decode())
        rows.append(
            {
                "series": series,
                "lines": body.count(b"\n"),
                "ours_ms": ours * 1000,
                "ours_cold_ms": cold * 1000,
                "client_ms": client * 1000,
                "before_ms": before * 1000,
                "ratio": ours / client,
                "before_ratio": before / client,
                "us_per_series": ours / series * 1e6,
                "bytes": len(body),
                "gzip_bytes": len(zipped),
                "gzip_ms": gzip_s * 1000,
                "same_series": same,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| HTTP label sets | sample lines | ours (warm) | ours (first) | prometheus_client "
        "| ratio | before (OTel exporter) | before ratio | µs/series | text | gzip -1 "
        "| same series |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['series']:,} | {r['lines']:,} | {r['ours_ms']:.1f} ms"
            f" | {r['ours_cold_ms']:.1f} ms"
            f" | {r['client_ms']:.1f} ms | **{r['ratio']:.2f}x** | {r['before_ms']:.1f} ms"
            f" | {r['before_ratio']:.2f}x | {r['us_per_series']:.1f} | {r['bytes'] / 1e6:.1f} MB"
            f" | {r['gzip_bytes'] / 1e6:.2f} MB in {r['gzip_ms']:.0f} ms"
            f" | {'yes' if r['same_series'] else 'NO'} |"
        )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        growth = (b["ours_ms"] / a["ours_ms"]) / (b["series"] / a["series"])
        client_growth = (b["client_ms"] / a["client_ms"]) / (b["series"] / a["series"])
        lines.append(
            f"\nGrowth {a['series']:,} → {b['series']:,} series, time ratio divided by series "
            f"ratio (1.0 = linear): ours {growth:.2f}, prometheus_client {client_growth:.2f}."
        )
    return "\n".join(lines)


def openmetrics(series: int = 1000, runs: int = 5) -> list[dict[str, Any]]:
    """One scrape of `series` HTTP label sets, side by side in one run: the 0.0.4 text as
    served before (no exemplars), the same text with exemplars held (pull mode with traces),
    OpenMetrics with an exemplar on every observed bucket and counter, and prometheus_client's
    OpenMetrics writer on its own instruments holding the same series and exemplars.
    Interleaved rounds, CPU time of this process (a busy machine moves wall time), median."""
    plain, linked = build(series), build(series, exemplars=True)
    renders: dict[str, Callable[[], bytes]] = {
        "0.0.4 text, no exemplars (before)": plain.ours.render,
        "0.0.4 text, exemplars held": linked.ours.render,
        "OpenMetrics, exemplars": partial(linked.ours.render, True),
        "prometheus_client OpenMetrics writer, exemplars": partial(
            openmetrics_latest, linked.client.registry
        ),
    }
    bodies = {name: render() for name, render in renders.items()}  # caches filled
    times: dict[str, list[float]] = {name: [] for name in renders}
    for _ in range(runs):
        for name, render in renders.items():
            started = time.process_time()
            render()
            times[name].append(time.process_time() - started)
    return [
        {
            "render": name,
            "ms": statistics.median(times[name]) * 1000,
            "bytes": len(bodies[name]),
            "exemplars": bodies[name].count(b" # {"),
        }
        for name in renders
    ]


def openmetrics_table(rows: list[dict[str, Any]], series: int) -> str:
    lines = [
        f"| {series:,} HTTP label sets | median | vs before | text | exemplars |",
        "|---|---:|---:|---:|---:|",
    ]
    before = rows[0]["ms"]
    for r in rows:
        lines.append(
            f"| {r['render']} | {r['ms']:.1f} ms | {r['ms'] / before:.2f}x "
            f"| {r['bytes'] / 1e6:.2f} MB | {r['exemplars']:,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.scrape")
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--openmetrics", type=int, metavar="SERIES", help="only the OpenMetrics comparison"
    )
    args = parser.parse_args(argv)
    if args.openmetrics:
        print(openmetrics_table(openmetrics(args.openmetrics, args.runs), args.openmetrics))
        return 0
    print(table(run(args.series, args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def runtime_cost(series: int = 1000, runs: int = 200) -> dict[str, float]:
    """What the runtime families (telemetry/runtime.py: /proc reads, gc.get_stats(), 13 lines)
    add to one scrape: the same pull reader with and without them, `series` counter lines
    beside, median ms over `runs` renders, five interleaved rounds."""
    from telemetry import runtime

    def once(with_runtime: bool) -> float:
        reader = PrometheusTextReader()
        meter = MeterProvider(metric_readers=[reader]).get_meter("testboost")
        if with_runtime:
            runtime.observe(meter)
        counter = meter.create_counter("requests")
        for index in range(series):
            counter.add(1, {"path": f"/route/{index}"})
        reader.render()
        timings = []
        for _ in range(runs):
            began = time.perf_counter()
            reader.render()
            timings.append(time.perf_counter() - began)
        return statistics.median(timings) * 1000

    without, with_ = [], []
    for _ in range(5):
        without.append(once(False))
        with_.append(once(True))
    return {
        "without_ms": statistics.median(without),
        "with_ms": statistics.median(with_),
        "added_ms": statistics.median(with_) - statistics.median(without),
    }
