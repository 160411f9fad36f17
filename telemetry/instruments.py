"""Instruments built from the catalog, and the record calls the API makes.

Attribute dicts are cached per label tuple: the SDK hashes the attributes of every
measurement, and reusing one dict per series keeps the request path cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from telemetry.catalog import (
    BY_NAME,
    CATALOG,
    LLM_ERROR_TYPES,
    WORKFLOW_STATUSES,
    Kind,
    MetricFamily,
)
from telemetry.mapping import llm_error_type

Attributes = dict[str, str]
Reading = Callable[[], float | None]


class Instruments:
    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._instruments: dict[str, Any] = {}
        self._attributes: dict[tuple[str, ...], Attributes] = {}
        for family in CATALOG:
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
        self._http_count = self._instruments["testboost_http_requests_total"]
        self._http_duration = self._instruments["testboost_http_request_duration_seconds"]

    def _attrs(self, family: str, *values: str) -> Attributes:
        key = (family, *values)
        attrs = self._attributes.get(key)
        if attrs is None:
            attrs = dict(zip(BY_NAME[family].labels, values, strict=True))
            # Bounded by the label sets the mapping can produce; the SDK's cardinality limit
            # caps each metric anyway.
            if len(self._attributes) < 20_000:
                self._attributes[key] = attrs
        return attrs

    def observe(self, family_name: str, read: Reading) -> None:
        """An observable gauge for a label-less family whose value `read` returns on collection
        (None skips the point, e.g. while the database is unreachable)."""
        family: MetricFamily = BY_NAME[family_name]
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
        counters = self._instruments
        counters["testboost_llm_calls_total"].add(
            0, self._attrs("testboost_llm_calls_total", provider, model)
        )
        counters["testboost_llm_rate_limit_total"].add(
            0, self._attrs("testboost_llm_rate_limit_total", provider)
        )
        for error_type in LLM_ERROR_TYPES:
            counters["testboost_llm_errors_total"].add(
                0, self._attrs("testboost_llm_errors_total", provider, error_type)
            )
        for workflow_type in workflow_types:
            for status in WORKFLOW_STATUSES:
                counters["testboost_workflow_total"].add(
                    0, self._attrs("testboost_workflow_total", workflow_type, status)
                )

    def http_request(self, method: str, path: str, status: str, seconds: float) -> None:
        self._http_count.add(1, self._attrs("testboost_http_requests_total", method, path, status))
        self._http_duration.record(
            seconds, self._attrs("testboost_http_request_duration_seconds", method, path)
        )

    def llm_attempt(self, provider: str, model: str, outcome: str, seconds: float) -> None:
        self._instruments["testboost_llm_calls_total"].add(
            1, self._attrs("testboost_llm_calls_total", provider, model)
        )
        self._instruments["testboost_llm_request_duration_seconds"].record(
            seconds, self._attrs("testboost_llm_request_duration_seconds", provider)
        )
        error_type = llm_error_type(outcome)
        if error_type is None:
            return
        self._instruments["testboost_llm_errors_total"].add(
            1, self._attrs("testboost_llm_errors_total", provider, error_type)
        )
        if error_type == "rate_limit":
            self._instruments["testboost_llm_rate_limit_total"].add(
                1, self._attrs("testboost_llm_rate_limit_total", provider)
            )

    def workflow_finished(self, workflow_type: str, status: str, seconds: float) -> None:
        self._instruments["testboost_workflow_total"].add(
            1, self._attrs("testboost_workflow_total", workflow_type, status)
        )
        self._instruments["testboost_workflow_duration_seconds"].record(
            seconds, self._attrs("testboost_workflow_duration_seconds", workflow_type)
        )
