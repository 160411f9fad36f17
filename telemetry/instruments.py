"""Instruments built from the catalog, and the record calls the API makes.

Attribute dicts are cached per label tuple: the SDK hashes the attributes of every
measurement, and reusing one dict per series keeps the request path cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

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

Attributes = dict[str, str]
Reading = Callable[[], float | None]


class Instruments:
    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._instruments: dict[str, Any] = {}  # by family name
        self._attributes: dict[tuple[Any, ...], Attributes] = {}
        for family in CATALOG:
            if family.observed:
                continue  # telemetry/runtime.py reads these at collection
            if family.kind is Kind.COUNTER:
                self._instruments[family.name] = meter.create_counter(
                    family.otel_name, unit=family.unit, description=family.description
                )
            elif family.kind is Kind.HISTOGRAM:
                self._instruments[family.name] = meter.create_histogram(
                    family.otel_name,
                    unit=family.unit,
                    description=family.description,
                    explicit_bucket_boundaries_advisory=family.buckets,
                )
        self._http_count = self._instruments[HTTP_REQUESTS.name]
        self._http_duration = self._instruments[HTTP_DURATION.name]

    def _attrs(self, family: MetricFamily, *values: str) -> Attributes:
        key = (family.name, *values)
        attrs = self._attributes.get(key)
        if attrs is None:
            attrs = dict(zip(family.labels, values, strict=True))
            # Bounded by the label sets the mapping can produce; the SDK's cardinality limit
            # caps each metric anyway.
            if len(self._attributes) < 20_000:
                self._attributes[key] = attrs
        return attrs

    def _add(self, family: MetricFamily, amount: int, *values: str) -> None:
        self._instruments[family.name].add(amount, self._attrs(family, *values))

    def observe(self, family: MetricFamily, read: Reading) -> None:
        """An observable gauge for a label-less family whose value `read` returns on collection
        (None skips the point, e.g. while the database is unreachable)."""
        assert family.kind is Kind.GAUGE and not family.labels

        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            value = read()
            return [] if value is None else [Observation(value)]

        self._meter.create_observable_gauge(
            family.otel_name,
            callbacks=[callback],
            unit=family.unit,
            description=family.description,
        )

    def prime(self, provider: str, model: str, workflow_types: Iterable[str]) -> None:
        """Start every known counter series at 0. Prometheus' increase() cannot see events
        that happen before a series' first scrape, and a dashboard shows "no data" where it
        should show 0: a first rate limit after start-up would otherwise be missed."""
        self._add(LLM_CALLS, 0, provider, model)
        self._add(LLM_RATE_LIMITS, 0, provider)
        for outcome in LLMOutcome:
            error_type = llm_error_type(outcome)
            if error_type is not None:
                self._add(LLM_ERRORS, 0, provider, error_type)
        for workflow_type in workflow_types:
            for status in WorkflowStatus:
                self._add(WORKFLOWS, 0, workflow_type, status)

    def http_request(self, method: str, path: str, status: str, seconds: float) -> None:
        self._http_count.add(1, self._attrs(HTTP_REQUESTS, method, path, status))
        self._http_duration.record(seconds, self._attrs(HTTP_DURATION, method, path))

    def llm_attempt(self, provider: str, model: str, outcome: str, seconds: float) -> None:
        self._add(LLM_CALLS, 1, provider, model)
        self._instruments[LLM_DURATION.name].record(seconds, self._attrs(LLM_DURATION, provider))
        error_type = llm_error_type(outcome)
        if error_type is None:
            return
        self._add(LLM_ERRORS, 1, provider, error_type)
        if error_type == LLMOutcome.RATE_LIMIT:
            self._add(LLM_RATE_LIMITS, 1, provider)

    def workflow_finished(self, workflow_type: str, status: str, seconds: float) -> None:
        self._add(WORKFLOWS, 1, workflow_type, status)
        self._instruments[WORKFLOW_DURATION.name].record(
            seconds, self._attrs(WORKFLOW_DURATION, workflow_type)
        )
