"""/metrics rendering for N HTTP label sets: our renderer (telemetry/exposition.py) against
prometheus_client's writer on its own instruments holding the same series and values.
In process, no HTTP: the work a scrape does. This is the figure that justifies writing our
own renderer."""

from __future__ import annotations

import gzip
import timeit
from functools import partial
from typing import Any

import prometheus_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from telemetry.catalog import HTTP_DURATION, HTTP_REQUESTS
from telemetry.exposition import PrometheusTextReader
from telemetry.instruments import Instruments
from telemetry.mapping import KNOWN_METHODS

METHODS = sorted(KNOWN_METHODS)
STATUSES = ("200", "201", "204", "400", "404", "409", "422", "500")


def build(series: int) -> tuple[PrometheusTextReader, CollectorRegistry]:
    """Both sides fed the same requests: three per label set."""
    prometheus_client.disable_created_metrics()  # ours has no `_created` series
    registry = CollectorRegistry(auto_describe=False)
    requests = prometheus_client.Counter(
        HTTP_REQUESTS.name, HTTP_REQUESTS.description, HTTP_REQUESTS.labels, registry=registry
    )
    duration = prometheus_client.Histogram(
        HTTP_DURATION.name,
        HTTP_DURATION.description,
        HTTP_DURATION.labels,
        registry=registry,
        buckets=HTTP_DURATION.buckets,
    )
    # Above the default limit of 2,000 series: the point is to render them all.
    instruments = Instruments("testboost", Resource.get_empty(), cardinality_limit=series + 100)
    ours = PrometheusTextReader(produce=instruments.collect)
    MeterProvider(metric_readers=[ours])
    for i in range(series):
        method, path = METHODS[i % len(METHODS)], f"/api/v2/route{i}/{{id}}"
        status = STATUSES[i % len(STATUSES)]
        for seconds in (0.003, 0.04, 0.7 + i % 7):
            instruments.http_request(method, path, status, seconds)
            requests.labels(method, path, status).inc()
            duration.labels(method, path).observe(seconds)
    return ours, registry


def samples(text: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def run(series_counts: list[int], runs: int) -> list[dict[str, Any]]:
    rows = []
    for series in series_counts:
        ours, registry = build(series)
        first = timeit.timeit(ours.render, number=1)  # builds the per-series label cache
        body, client_body = ours.render(), generate_latest(registry)
        ours_s = min(timeit.repeat(ours.render, number=1, repeat=runs))
        client_s = min(timeit.repeat(partial(generate_latest, registry), number=1, repeat=runs))
        gzip_s = timeit.timeit(partial(gzip.compress, body, compresslevel=1), number=1)
        rows.append(
            {
                "series": series,
                "lines": body.count(b"\n"),
                "ours_ms": ours_s * 1000,
                "ours_first_ms": first * 1000,
                "client_ms": client_s * 1000,
                "ratio": ours_s / client_s,
                "bytes": len(body),
                "gzip_bytes": len(gzip.compress(body, compresslevel=1)),
                "gzip_ms": gzip_s * 1000,
                "same_series": samples(body) == samples(client_body),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| HTTP label sets | lines | ours | ours, first scrape | prometheus_client | ratio "
        "| text | gzip -1 | same series |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['series']:,} | {r['lines']:,} | {r['ours_ms']:.1f} ms "
            f"| {r['ours_first_ms']:.1f} ms | {r['client_ms']:.1f} ms | **{r['ratio']:.2f}x** "
            f"| {r['bytes'] / 1e6:.1f} MB | {r['gzip_bytes'] / 1e6:.2f} MB in "
            f"{r['gzip_ms']:.0f} ms | {'yes' if r['same_series'] else 'NO'} |"
        )
    return "\n".join(lines)
