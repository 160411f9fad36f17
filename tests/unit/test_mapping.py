"""Semantic conventions → contract: pure functions, table tests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from telemetry.catalog import CATALOG, UNMATCHED_PATH, Kind
from telemetry.mapping import (
    endpoint_paths,
    llm_error_type,
    method_label,
    path_label,
    pool_max,
    prometheus_name,
)


@pytest.mark.parametrize(
    "method,label",
    [
        ("GET", "GET"),
        ("POST", "POST"),
        ("PATCH", "PATCH"),
        ("OPTIONS", "OPTIONS"),
        ("get", "_OTHER"),
        ("PROPFIND", "_OTHER"),
        ("X" * 500, "_OTHER"),
        ("", "_OTHER"),
    ],
)
def test_method_label_folds_unknown_methods(method: str, label: str) -> None:
    assert method_label(method) == label


@pytest.mark.parametrize(
    "scope,label",
    [
        (
            {"route": SimpleNamespace(path="/api/v2/sessions/{session_id}")},
            "/api/v2/sessions/{session_id}",
        ),
        ({"route": SimpleNamespace(path="/health"), "path": "/health?x=1"}, "/health"),
        ({"path": "/random/abc123"}, UNMATCHED_PATH),
        ({"route": None}, UNMATCHED_PATH),
        ({"route": SimpleNamespace()}, UNMATCHED_PATH),
        ({"endpoint": print}, "/docs"),
        ({"endpoint": len}, UNMATCHED_PATH),
    ],
)
def test_path_label_is_the_route_template_or_one_fixed_value(scope: dict, label: str) -> None:
    assert path_label(scope, {print: "/docs"}) == label


def test_endpoint_paths_maps_plain_routes() -> None:
    routes = [SimpleNamespace(endpoint=print, path="/docs"), SimpleNamespace(path="/mount")]
    assert endpoint_paths(routes) == {print: "/docs"}


@pytest.mark.parametrize(
    "outcome,error_type",
    [
        ("success", None),
        ("rate_limit", "rate_limit"),
        ("timeout", "timeout"),
        ("connection", "connection"),
        ("auth", "auth"),
        ("invalid_request", "invalid_request"),
        ("server_error", "server_error"),
    ],
)
def test_llm_error_type(outcome: str, error_type: str | None) -> None:
    assert llm_error_type(outcome) == error_type


@pytest.mark.parametrize("size,overflow,most", [(5, 10, 15), (10, 0, 10), (5, -1, 5)])
def test_pool_max(size: int, overflow: int, most: int) -> None:
    assert pool_max(size, overflow) == most


@pytest.mark.parametrize(
    "otel_name,unit,kind,exposed",
    [
        ("testboost_llm_calls", "", "counter", "testboost_llm_calls_total"),
        ("testboost_llm_calls_total", "", "counter", "testboost_llm_calls_total"),
        ("testboost_workflow_duration", "s", "histogram", "testboost_workflow_duration_seconds"),
        ("testboost_active_sessions", "", "gauge", "testboost_active_sessions"),
        ("process_resident_memory", "By", "gauge", "process_resident_memory_bytes"),
        ("process_cpu", "s", "counter", "process_cpu_seconds_total"),
        ("busy_total", "s", "counter", "busy_seconds_total"),
        ("wait_seconds", "s", "histogram", "wait_seconds"),
        ("testboost.llm-calls", "", "counter", "testboost_llm_calls_total"),
    ],
)
def test_prometheus_name(otel_name: str, unit: str, kind: str, exposed: str) -> None:
    assert prometheus_name(otel_name, unit, kind) == exposed


@pytest.mark.parametrize("family", CATALOG, ids=lambda f: f.name)
def test_every_catalog_instrument_translates_to_its_exposed_name(family) -> None:
    assert prometheus_name(family.otel_name, family.unit, family.kind.value) == family.name
    assert family.unit != "1"  # would become `_ratio` on the OTLP path only


def test_alert_thresholds_are_bucket_boundaries() -> None:
    by_name = {f.name: f for f in CATALOG}
    assert 5.0 in by_name["testboost_http_request_duration_seconds"].buckets
    assert 300.0 in by_name["testboost_workflow_duration_seconds"].buckets
    assert max(by_name["testboost_llm_request_duration_seconds"].buckets) >= 120.0
    for family in CATALOG:
        assert (family.kind is Kind.HISTOGRAM) == bool(family.buckets)
        assert list(family.buckets) == sorted(set(family.buckets))
