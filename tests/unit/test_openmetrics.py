"""OpenMetrics on /metrics (telemetry/exposition.py, exporters.py): exact text with exemplars on
hand-built points, what prometheus_client's strict OpenMetrics parser reads from the API's own
instruments, the Accept headers Prometheus 2.53 and 3.5 send, the 0.0.4 text untouched, and
exemplars kept per bucket across collections and across workers (telemetry/instruments.py,
multiprocess.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import (
    AlwaysOnExemplarFilter,
    Exemplar,
    MeterProvider,
    TraceBasedExemplarFilter,
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
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.testclient import TestClient

from telemetry.catalog import HTTP_DURATION, HTTP_REQUESTS
from telemetry.exporters import MetricsEndpoint
from telemetry.exposition import (
    CONTENT_TYPE,
    OPENMETRICS_CONTENT_TYPE,
    PrometheusTextReader,
    render,
    wants_openmetrics,
)
from telemetry.instruments import Instruments
from telemetry.multiprocess import SUFFIX, WorkerMetrics, decode, encode, publishable
from tests.unit.test_multiprocess import dead_worker

# What each Prometheus sends (captured from .tools/bin/prometheus and prometheus3 scraping a
# local server with their default scrape_protocols).
PROMETHEUS_2_53 = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
    "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_3_5 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;"
    "escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
TRACE = 0x0AF7651916CD43DD8448EB211C80319C
SPAN = 0xB7AD6B7169203331
T0 = 1_733_480_000_123_456_789  # ns


def data(*metrics: Metric) -> MetricsData:
    scope = ScopeMetrics(InstrumentationScope("testboost"), list(metrics), "")
    return MetricsData([ResourceMetrics(Resource.get_empty(), [scope], "")])


def latency(exemplars: list[Exemplar]) -> Metric:
    point = HistogramDataPoint(
        {"route": "/x"}, 0, 1, 4, 4.05, (1, 2, 1), (0.1, 1.0), 0.05, 3.0, exemplars
    )
    cumulative = AggregationTemporality.CUMULATIVE
    return Metric("latency", 'Time "spent".', "s", Histogram([point], cumulative))


def requests(exemplars: list[Exemplar]) -> Metric:
    point = NumberDataPoint({"route": "/x"}, 0, 1, 3, exemplars)
    cumulative = AggregationTemporality.CUMULATIVE
    return Metric("requests", "Requests.", "", Sum([point], cumulative, is_monotonic=True))


def test_exact_openmetrics_text() -> None:
    exemplars = [
        Exemplar(None, 0.5, T0, SPAN, TRACE),
        Exemplar(None, 0.7, T0 + 10**9, SPAN + 1, TRACE + 1),  # newer, same bucket: shown
        Exemplar(None, 3.0, T0, None, None),  # links nothing: left out
    ]
    text = render(
        data(latency(exemplars), requests([Exemplar(None, 1, T0, SPAN, TRACE)])), None, True
    )
    trace_id, span_id = format(TRACE, "032x"), format(SPAN, "016x")
    newer = f'trace_id="{format(TRACE + 1, "032x")}",span_id="{format(SPAN + 1, "016x")}"'
    assert text == (
        '# HELP latency_seconds Time \\"spent\\".\n'
        "# TYPE latency_seconds histogram\n"
        'latency_seconds_bucket{le="0.1",route="/x"} 1.0\n'
        f'latency_seconds_bucket{{le="1.0",route="/x"}} 3.0 # {{{newer}}} 0.7 1733480001.123\n'
        'latency_seconds_bucket{le="+Inf",route="/x"} 4.0\n'
        'latency_seconds_count{route="/x"} 4.0\n'
        'latency_seconds_sum{route="/x"} 4.05\n'
        "# HELP requests Requests.\n"
        "# TYPE requests counter\n"
        f'requests_total{{route="/x"}} 3.0 # {{trace_id="{trace_id}",span_id="{span_id}"}} '
        "1.0 1733480000.123\n"
        "# EOF\n"
    )
    # The 0.0.4 text of the same data: no exemplar, counter family named with _total, no EOF.
    assert render(data(latency(exemplars), requests([]))) == render(data(latency([]), requests([])))
    assert "# TYPE requests_total counter\n" in render(data(requests([])))


def test_exemplar_labels_stay_within_128_characters() -> None:
    short, long = {"user": "u1"}, {"query": "x" * 80}
    exemplar = Exemplar({**short, **long}, 0.5, T0, SPAN, TRACE)
    text = render(data(latency([exemplar])), None, True)
    (line,) = [line for line in text.splitlines() if " # {" in line]
    labels = line.split(" # {")[1].split("}")[0]
    assert (
        labels == f'trace_id="{format(TRACE, "032x")}",span_id="{format(SPAN, "016x")}",user="u1"'
    )
    families = list(text_string_to_metric_families(text))  # the parser enforces the limit
    assert families[0].samples[1].exemplar.labels["trace_id"] == format(TRACE, "032x")


def traced_instruments(keep: bool = True) -> tuple[Instruments, PrometheusTextReader]:
    instruments = Instruments(
        "testboost", Resource.get_empty(), TraceBasedExemplarFilter(), keep_exemplars=keep
    )
    return instruments, PrometheusTextReader(produce=instruments.collect)


def sampled(tracer: trace.Tracer, record: Any) -> tuple[str, str]:
    with tracer.start_as_current_span("request") as span:
        record()
        context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def exemplars_of(text: str, sample: str) -> dict[tuple[tuple[str, str], ...], dict[str, str]]:
    return {
        tuple(sorted(s.labels.items())): s.exemplar.labels
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and s.exemplar is not None
    }


def test_the_apis_families_parse_as_openmetrics_with_the_requests_trace() -> None:
    tracer = TracerProvider().get_tracer("test")
    instruments, reader = traced_instruments()
    MeterProvider(metric_readers=[reader])
    instruments.prime("openai", "gpt", ["impact_analysis"], [("GET", "/a")])
    trace_id, span_id = sampled(tracer, lambda: instruments.http_request("GET", "/a", "200", 0.07))
    instruments.http_request("GET", "/a", "200", 0.07)  # no span: not an exemplar
    text = reader.render(openmetrics=True).decode()
    assert text.endswith("# EOF\n")
    expected = {"trace_id": trace_id, "span_id": span_id}
    bucket = f"{HTTP_DURATION.name}_bucket"
    assert exemplars_of(text, bucket) == {
        (("le", "0.1"), ("method", "GET"), ("path", "/a")): expected
    }
    counter = exemplars_of(text, HTTP_REQUESTS.name)
    assert counter == {(("method", "GET"), ("path", "/a"), ("status", "200")): expected}
    # Kept for the next scrape, and for any other collection in between.
    reader.snapshot()
    again = reader.render(openmetrics=True).decode()
    assert exemplars_of(again, bucket) == exemplars_of(text, bucket)
    # The 0.0.4 text never carries them.
    assert " # " not in reader.render().decode()


def test_a_newer_exemplar_replaces_its_buckets_and_the_sdks_way_resets() -> None:
    tracer = TracerProvider().get_tracer("test")
    instruments, reader = traced_instruments()
    first = sampled(tracer, lambda: instruments.http_request("GET", "/a", "200", 0.07))
    slow = sampled(tracer, lambda: instruments.http_request("GET", "/a", "200", 2.0))
    reader.render(openmetrics=True)
    second = sampled(tracer, lambda: instruments.http_request("GET", "/a", "200", 0.08))
    found = exemplars_of(reader.render(openmetrics=True).decode(), f"{HTTP_DURATION.name}_bucket")
    by_le = {dict(key)["le"]: labels["trace_id"] for key, labels in found.items()}
    assert by_le == {"0.1": second[0], "2.5": slow[0]}
    assert first[0] not in by_le.values()

    # Without keep_exemplars, as the SDK's reservoirs: collected once, then gone.
    sdk_like, _reader = traced_instruments(keep=False)
    sampled(tracer, lambda: sdk_like.http_request("GET", "/a", "200", 0.07))
    assert any(p.exemplars for p in _points(sdk_like.collect(None)))
    assert not any(p.exemplars for p in _points(sdk_like.collect(None)))


def _points(collected: MetricsData) -> list[Any]:
    return [
        point
        for rm in collected.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for point in metric.data.data_points
    ]


@pytest.mark.parametrize(
    "accept,openmetrics",
    [
        (PROMETHEUS_2_53, True),
        (PROMETHEUS_3_5, True),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text; version=0.0.1", True),
        ("text/plain;version=0.0.4", False),
        ("", False),  # curl, a browser
        ("*/*", False),
        ("text/plain;q=0.9,application/openmetrics-text;q=0.5", False),
        ("application/openmetrics-text;version=2.0.0", False),  # not a version we write
        ("application/openmetrics-text;q=0", False),
    ],
)
def test_what_each_scraper_gets(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


def client(render: Any, token: str | None = None) -> TestClient:
    app = Starlette()
    app.add_route("/metrics", MetricsEndpoint(render, "prometheus", token).handle)
    return TestClient(app)


def test_the_endpoint_negotiates_and_keeps_its_token_and_gzip() -> None:
    tracer = TracerProvider().get_tracer("test")
    instruments, reader = traced_instruments()
    sampled(tracer, lambda: instruments.http_request("GET", "/a", "200", 0.07))
    with client(reader.render, token="secret") as http:
        assert http.get("/metrics", headers={"Accept": PROMETHEUS_3_5}).status_code == 401
        auth = {"Authorization": "Bearer secret"}
        plain = http.get("/metrics", headers=auth)
        assert plain.headers["content-type"] == CONTENT_TYPE
        assert " # {" not in plain.text and "# EOF" not in plain.text
        scraped = http.get(
            "/metrics", headers={**auth, "Accept": PROMETHEUS_2_53, "Accept-Encoding": "gzip"}
        )
        assert scraped.headers["content-type"] == OPENMETRICS_CONTENT_TYPE
        assert scraped.headers["content-encoding"] == "gzip"
        assert scraped.text.endswith("# EOF\n") and " # {trace_id=" in scraped.text


def test_push_mode_note_stays_the_text_format_whatever_is_asked() -> None:
    """OpenMetrics allows no free comments: the comment-only page stays 0.0.4 text, which
    Prometheus accepts whatever it asked for."""
    with client(None) as http:
        response = http.get("/metrics", headers={"Accept": PROMETHEUS_3_5})
    assert response.headers["content-type"] == CONTENT_TYPE
    assert response.text.startswith("# TestBoost metrics are not exposed here")


def test_every_workers_exemplars_survive_the_merge(tmp_path: Path) -> None:
    """Each worker's newest exemplar per bucket reaches the merged scrape, a dead worker's
    too; where two workers have one for the same bucket, the newer wins."""
    tracer = TracerProvider().get_tracer("test")
    links = {}
    for name, seconds in (("dead", 0.07), ("live", 2.0), ("own", 0.08)):
        instruments, reader = traced_instruments()
        links[name] = sampled(
            tracer, lambda i=instruments, s=seconds: i.http_request("GET", "/a", "200", s)
        )
        if name == "own":
            own = reader
        else:
            worker_id = dead_worker() if name == "dead" else "1-1"
            published = encode(publishable(reader.snapshot()))
            (tmp_path / f"{worker_id}{SUFFIX}").write_bytes(published)
    merged = WorkerMetrics(tmp_path).merged(own.snapshot())
    text = render(merged, None, True)
    found = exemplars_of(text, f"{HTTP_DURATION.name}_bucket")
    by_le = {dict(key)["le"]: labels["trace_id"] for key, labels in found.items()}
    # 0.07 (dead) and 0.08 (own, newer) share the 0.1 bucket; 2.0 is the live worker's.
    assert by_le == {"0.1": links["own"][0], "2.5": links["live"][0]}
    counter = exemplars_of(text, HTTP_REQUESTS.name)
    assert [labels["trace_id"] for labels in counter.values()] == [links["own"][0]]
    # And through the dead record the fold writes.
    folder = WorkerMetrics(tmp_path)
    folder.fold()
    again = render(folder.merged(own.snapshot()), None, True)
    assert exemplars_of(again, f"{HTTP_DURATION.name}_bucket") == found


def test_published_exemplars_are_checked_and_older_files_still_read() -> None:
    point = [{"path": "/a"}, 1, 3]
    old = {"format": 1, "metrics": [["s", "n", "", "", "counter", [point]]]}
    assert decode(json.dumps(old).encode())[0][5][0][3] == []
    good = [0.5, T0, format(TRACE, "032x"), format(SPAN, "016x"), {}]
    ok = {"format": 1, "metrics": [["s", "n", "", "", "counter", [[*point, [good]]]]]}
    assert decode(json.dumps(ok).encode())[0][5][0][3] == [tuple(good)]
    for bad in (
        [0.5, T0, "not hex", None, {}],
        [0.5, -1, None, None, {}],
        [0.5, T0, None, None, {"a": []}],
        "exec",
    ):
        document = {"format": 1, "metrics": [["s", "n", "", "", "counter", [[*point, [bad]]]]]}
        with pytest.raises(ValueError):
            decode(json.dumps(document).encode())


def test_always_on_filter_without_a_span_renders_no_exemplar() -> None:
    instruments = Instruments(
        "testboost", Resource.get_empty(), AlwaysOnExemplarFilter(), keep_exemplars=True
    )
    instruments.http_request("GET", "/a", "200", 0.07)
    text = render(instruments.collect(None), None, True)
    assert " # {" not in text
    list(text_string_to_metric_families(text))
