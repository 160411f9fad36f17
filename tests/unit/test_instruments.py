"""telemetry/instruments.py against the SDK it stands in for: the same observations recorded
through the SDK's own Counter and Histogram and through our accumulators give the same data
points (values, buckets, sums, min/max, start times' order, cardinality overflow, exemplars)."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import (
    AlwaysOnExemplarFilter,
    Counter,
    Histogram,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

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
    WorkflowStatus,
)
from telemetry.instruments import Instruments
from telemetry.mapping import llm_error_type


class SdkInstruments:
    """The reference: the record calls made with the SDK's synchronous instruments, as the
    API made them before telemetry/instruments.py (counters primed by add(0))."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.made: dict[str, Any] = {}
        for family in CATALOG:
            if family.observed or family.kind is Kind.GAUGE:
                continue
            if family.kind is Kind.COUNTER:
                self.made[family.name] = meter.create_counter(
                    family.otel_name, unit=family.unit, description=family.description
                )
            else:
                self.made[family.name] = meter.create_histogram(
                    family.otel_name,
                    unit=family.unit,
                    description=family.description,
                    explicit_bucket_boundaries_advisory=family.buckets,
                )

    def _attrs(self, family: Any, *values: str) -> dict[str, str]:
        # Plain strings: the SDK keys a StrEnum value apart from the equal str.
        return {label: str(value) for label, value in zip(family.labels, values, strict=True)}

    def add(self, family: Any, amount: int, *values: str) -> None:
        self.made[family.name].add(amount, self._attrs(family, *values))

    def record(self, family: Any, value: float, *values: str) -> None:
        self.made[family.name].record(value, self._attrs(family, *values))

    def prime(
        self,
        provider: str,
        model: str,
        workflow_types: Iterable[str],
        routes: Iterable[Sequence[str]] = (),
    ) -> None:
        self.add(LLM_CALLS, 0, provider, model)
        self.add(LLM_RATE_LIMITS, 0, provider)
        for outcome in LLMOutcome:
            error_type = llm_error_type(outcome)
            if error_type is not None:
                self.add(LLM_ERRORS, 0, provider, error_type)
        for workflow_type in workflow_types:
            for status in WorkflowStatus:
                self.add(WORKFLOWS, 0, workflow_type, status)

    def http_request(self, method: str, path: str, status: str, seconds: float) -> None:
        self.add(HTTP_REQUESTS, 1, method, path, status)
        self.record(HTTP_DURATION, seconds, method, path)

    def llm_attempt(self, provider: str, model: str, outcome: str, seconds: float) -> None:
        self.add(LLM_CALLS, 1, provider, model)
        self.record(LLM_DURATION, seconds, provider)
        error_type = llm_error_type(outcome)
        if error_type is not None:
            self.add(LLM_ERRORS, 1, provider, error_type)
            if error_type == LLMOutcome.RATE_LIMIT:
                self.add(LLM_RATE_LIMITS, 1, provider)

    def workflow_finished(self, workflow_type: str, status: str, seconds: float) -> None:
        self.add(WORKFLOWS, 1, workflow_type, status)
        self.record(WORKFLOW_DURATION, seconds, workflow_type)


def points(data: MetricsData | None) -> dict[tuple[str, frozenset[Any]], dict[str, Any]]:
    """Every point by (metric, attributes), without its timestamps."""
    found = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    fields = {f.name: getattr(point, f.name) for f in dataclasses.fields(point)}
                    for stamp in ("start_time_unix_nano", "time_unix_nano", "attributes"):
                        fields.pop(stamp)
                    fields["exemplars"] = sorted(
                        (e.value, e.trace_id, e.span_id) for e in point.exemplars
                    )
                    key = (metric.name, frozenset((point.attributes or {}).items()))
                    found[key] = fields
    return found


def workload(record: Any, seed: int, calls: int = 3000) -> None:
    draw = random.Random(seed)
    for _ in range(calls):
        kind = draw.random()
        seconds = draw.choice([0.0, 0.005, 0.0051, 1.0, 2.5, 4000.0, draw.expovariate(3)])
        if kind < 0.7:
            method = draw.choice(["GET", "POST", "DELETE"])
            path = draw.choice(["/a", "/b", "/c/{id}", "<unmatched>"])
            record.http_request(method, path, draw.choice(["200", "404", "500"]), seconds)
        elif kind < 0.9:
            outcome = draw.choice([o.value for o in LLMOutcome])
            record.llm_attempt("openai", draw.choice(["m1", "m2"]), outcome, seconds)
        else:
            status = draw.choice([s.value for s in WorkflowStatus])
            record.workflow_finished(draw.choice(["w1", "w2"]), status, seconds * 100)


def both(limit: int | None = None, exemplars: Any = None) -> tuple[Any, Any, Any, Any]:
    limits = {Counter: limit, Histogram: limit} if limit else None
    sdk_reader = InMemoryMetricReader(cardinality_limits=limits)
    sdk_provider = MeterProvider(metric_readers=[sdk_reader], exemplar_filter=exemplars)
    sdk = SdkInstruments(sdk_provider.get_meter("testboost"))
    ours = Instruments("testboost", Resource.get_empty(), exemplars, limit or 2000)
    return sdk, sdk_reader, ours, ours.collect


def test_same_points_as_the_sdk() -> None:
    sdk, sdk_reader, ours, collect = both()
    for record in (sdk, ours):
        record.prime("openai", "m1", ["w1", "w2"])
        workload(record, seed=7)
    expected, got = points(sdk_reader.get_metrics_data()), points(collect(None))
    assert len(expected) > 50
    assert got == expected


def test_primed_histograms_exist_at_zero_before_any_record() -> None:
    ours = Instruments("testboost", Resource.get_empty())
    ours.prime("openai", "m1", ["w1"], [("GET", "/a")])
    got = points(ours.collect(None))
    for name, attrs in (
        (LLM_DURATION.otel_name, {"provider": "openai"}),
        (WORKFLOW_DURATION.otel_name, {"workflow_type": "w1"}),
        (HTTP_DURATION.otel_name, {"method": "GET", "path": "/a"}),
    ):
        point = got[(name, frozenset(attrs.items()))]
        assert point["count"] == 0 and point["sum"] == 0 and set(point["bucket_counts"]) == {0}
    failed = frozenset({"workflow_type": "w1", "status": "failed"}.items())
    assert got[(WORKFLOWS.otel_name, failed)]["value"] == 0


def test_overflow_as_the_sdk_does_it() -> None:
    sdk, sdk_reader, ours, collect = both(limit=5)
    for record in (sdk, ours):
        workload(record, seed=3, calls=500)
    expected, got = points(sdk_reader.get_metrics_data()), points(collect(None))
    overflow = frozenset({"otel.metric.overflow": True}.items())
    assert (HTTP_REQUESTS.otel_name, overflow) in got
    assert got == expected


@pytest.mark.parametrize("exemplar_filter", [AlwaysOnExemplarFilter(), TraceBasedExemplarFilter()])
def test_exemplars_as_the_sdk_keeps_them(exemplar_filter: Any) -> None:
    tracer = TracerProvider().get_tracer("test")
    sdk, sdk_reader, ours, collect = both(exemplars=exemplar_filter)
    for index in range(40):
        with tracer.start_as_current_span("request") if index % 3 else _no_span():
            for record in (sdk, ours):
                record.http_request("GET", "/a", "200", index / 10)
                record.llm_attempt("openai", "m1", "success", index / 10)
    expected, got = points(sdk_reader.get_metrics_data()), points(collect(None))
    histogram = got[(HTTP_DURATION.otel_name, frozenset({"method": "GET", "path": "/a"}.items()))]
    assert histogram["exemplars"]  # and only from sampled spans under the trace-based filter
    # A counter's reservoir keeps one measurement drawn at random: compare how many.
    for key in got:
        if key[0] in (HTTP_REQUESTS.otel_name, LLM_CALLS.otel_name):
            assert len(got[key].pop("exemplars")) == len(expected[key].pop("exemplars"))
    assert got == expected
    # Collected once, then reset, as the SDK's reservoirs are.
    assert not any(p["exemplars"] for p in points(collect(None)).values())


def _no_span() -> Any:
    return trace.use_span(trace.INVALID_SPAN)


def test_values_the_sdk_refuses_are_refused() -> None:
    sdk, sdk_reader, ours, collect = both()
    for record in (sdk, ours):
        for value in (float("nan"), float("inf"), -1.0, 0.5):
            record.workflow_finished("w1", "completed", value)
    expected, got = points(sdk_reader.get_metrics_data()), points(collect(None))
    duration = got[(WORKFLOW_DURATION.otel_name, frozenset({"workflow_type": "w1"}.items()))]
    assert duration["count"] == 1 and duration["sum"] == 0.5
    assert got == expected


def test_concurrent_records_are_all_counted() -> None:
    ours = Instruments("testboost", Resource.get_empty())

    def hammer() -> None:
        for _ in range(20_000):
            ours.http_request("GET", "/a", "200", 0.01)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = points(ours.collect(None))
    requests = frozenset({"method": "GET", "path": "/a", "status": "200"}.items())
    assert got[(HTTP_REQUESTS.otel_name, requests)]["value"] == 80_000
    histogram = got[(HTTP_DURATION.otel_name, frozenset({"method": "GET", "path": "/a"}.items()))]
    assert histogram["count"] == sum(histogram["bucket_counts"]) == 80_000


def test_collection_joins_the_sdk_scope() -> None:
    """The recorded families land in the scope of the SDK's own collection, beside the
    observed ones: one scope, as the exporters and the worker merge expect."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("testboost").create_observable_gauge("g", [lambda _o: []])
    provider.get_meter("testboost").create_counter("c").add(1)
    ours = Instruments("testboost", Resource.get_empty())
    ours.http_request("GET", "/a", "200", 0.1)
    data = ours.collect(reader.get_metrics_data())
    scopes = [sm.scope.name for rm in data.resource_metrics for sm in rm.scope_metrics]
    assert scopes == ["testboost"]
    names = [m.name for sm in data.resource_metrics[0].scope_metrics for m in sm.metrics]
    assert names == ["c", HTTP_REQUESTS.otel_name, HTTP_DURATION.otel_name]
