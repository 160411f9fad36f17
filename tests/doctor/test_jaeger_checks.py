"""The Jaeger checks (doctor/checks/jaeger.py) on fake HTTP: Jaeger's query API answers as
.tools/bin/jaeger (v1.76.0) does, the API takes the doctor's `traceparent`, and the trace
arrives, or does not, or arrives as another service. test_doctor_e2e.py runs them on a real
stack with traces, and stops its Jaeger."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from doctor.model import Result, Status
from tests.doctor.fake_http import FakeServer
from tests.doctor.support import by_name, results_for, unreachable_hint
from tests.doctor.test_push_checks import api, closed_port_url

ANSWERS, TRACES = "query API answers", "the API's traces arrive"
SERVICE = "testboost-api"


def trace(trace_id: str, service: str = SERVICE, age_s: float = 0.0) -> dict[str, Any]:
    """A trace as Jaeger's /api/traces answers it (one span)."""
    start_us = int((time.time() - age_s) * 1e6)
    return {
        "traceID": trace_id,
        "spans": [
            {
                "traceID": trace_id,
                "spanID": "00f067aa0ba902b7",
                "operationName": "GET /api/v1/alerts",
                "startTime": start_us,
                "duration": 1200,
                "processID": "p1",
            }
        ],
        "processes": {"p1": {"serviceName": service, "tags": []}},
    }


def envelope(data: Any) -> dict[str, Any]:
    return {"data": data, "total": 0, "limit": 0, "offset": 0, "errors": None}


@dataclass
class Jaeger:
    """A Jaeger whose traces are what the fake API was asked with a `traceparent` (when
    `delivers`), plus `stored`, older ones."""

    api: FakeServer
    delivers: bool = True
    service: str = SERVICE
    stored: list[dict[str, Any]] = field(default_factory=list)
    searches: list[dict[str, list[str]]] = field(default_factory=list)

    def traced(self) -> list[dict[str, Any]]:
        if not self.delivers:
            return []
        parents = [h.get("traceparent") for _, h in self.api.requests if h.get("traceparent")]
        return [trace(p.split("-")[1], self.service) for p in parents if p]

    def everything(self) -> list[dict[str, Any]]:
        return self.traced() + self.stored

    def services(self, _: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        processes = [p for t in self.everything() for p in t["processes"].values()]
        return 200, envelope(sorted({p["serviceName"] for p in processes}) or None)

    def by_id(self, params: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        found = [t for t in self.everything() if t["traceID"] == params["*"][0]]
        if not found:
            return 404, {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]}
        return 200, envelope(found)

    def search(self, params: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        self.searches.append(params)
        service = params["service"][0]
        start = int(params["start"][0])
        found = [
            t
            for t in self.everything()
            if any(p["serviceName"] == service for p in t["processes"].values())
            and any(s["startTime"] >= start for s in t["spans"])
        ]
        return 200, envelope(found[: int(params["limit"][0])])

    def routes(self) -> dict[str, Any]:
        return {
            "/api/services": self.services,
            "/api/traces": self.search,
            "/api/traces/*": self.by_id,
        }


@contextmanager
def running(
    exporter: str = "otlp", **jaeger: Any
) -> Iterator[tuple[FakeServer, Jaeger, FakeServer]]:
    inbox = {"/api/v1/alerts": (200, {"items": [], "total": 0})}
    with FakeServer({**api(exporter), **inbox}) as fake_api:
        fake = Jaeger(fake_api, **jaeger)
        with FakeServer(fake.routes()) as fake_jaeger:
            yield fake_api, fake, fake_jaeger


def jaeger_checks(**options: Any) -> dict[str, Result]:
    return by_name(results_for("jaeger", **({"timeout": 2, "trace_wait": 1.0} | options)))


def test_a_traced_request_that_arrives_passes() -> None:
    with running() as (fake_api, _, jaeger):
        results = jaeger_checks(api=fake_api.url, jaeger=jaeger.url, api_key="k")
    assert results[ANSWERS].status is Status.PASS
    assert results[ANSWERS].detail == "/api/services: no service yet"
    assert results[TRACES].status is Status.PASS, results[TRACES]
    assert results[TRACES].detail.startswith(
        "a request the doctor traced (GET /api/v1/alerts) reached Jaeger as testboost-api in "
    )
    (parent,) = [h["traceparent"] for _, h in fake_api.requests if "traceparent" in h]
    version, trace_id, span_id, flags = parent.split("-")
    assert (version, len(trace_id), len(span_id), flags) == ("00", 32, 16, "01")  # sampled


def test_jaeger_stopped_fails_once_and_skips_the_trace_check() -> None:
    url = closed_port_url()
    with running() as (fake_api, _, _):
        results = jaeger_checks(api=fake_api.url, jaeger=url)
    assert results[ANSWERS].status is Status.FAIL
    assert results[ANSWERS].detail.startswith(f"{url} unreachable")
    assert results[ANSWERS].hint == unreachable_hint("jaeger", jaeger=url)
    assert f"`curl -i {url}/api/services`" in results[ANSWERS].hint
    assert (results[TRACES].status, results[TRACES].cause) == (Status.SKIP, "jaeger")
    assert [h for _, h in fake_api.requests if "traceparent" in h] == []  # nothing waited for


def test_traces_that_do_not_arrive_fail_with_the_age_of_the_newest() -> None:
    old = trace("4bf92f3577b34da6a3ce929d0e0e4736", age_s=600)
    with running(delivers=False, stored=[old]) as (fake_api, fake, jaeger):
        result = jaeger_checks(api=fake_api.url, jaeger=jaeger.url)[TRACES]
    assert result.status is Status.FAIL
    assert result.detail.startswith("a request the doctor traced (GET /api/v1/alerts) not in ")
    assert re.search(r"; the newest trace of testboost-api is 60[0-3] s old$", result.detail)
    assert "OTEL_TRACES_EXPORTER=otlp" in result.hint and jaeger.url in result.hint
    # Searched by time range in microseconds: Jaeger's API ignores `lookback`.
    (search,) = fake.searches
    assert "lookback" not in search
    assert 3599e6 <= int(search["end"][0]) - int(search["start"][0]) <= 3601e6


def test_a_service_jaeger_never_heard_of_is_named() -> None:
    with running(delivers=False) as (fake_api, _, jaeger):
        result = jaeger_checks(api=fake_api.url, jaeger=jaeger.url)[TRACES]
    assert result.status is Status.FAIL
    assert result.detail.endswith("Jaeger knows no service 'testboost-api' (it knows: none)")


def test_traces_under_another_service_name_fail_naming_it() -> None:
    with running(service="my-api") as (fake_api, _, jaeger):
        result = jaeger_checks(api=fake_api.url, jaeger=jaeger.url)[TRACES]
    assert result.status is Status.FAIL
    assert result.detail.endswith("reached Jaeger as my-api, not as testboost-api")
    assert "--trace-service" in result.hint
    with running(service="my-api") as (fake_api, _, jaeger):
        result = jaeger_checks(api=fake_api.url, jaeger=jaeger.url, trace_service="my-api")[TRACES]
    assert result.status is Status.PASS


def test_without_the_api_the_newest_trace_is_a_warning_or_a_failure() -> None:
    recent = trace("4bf92f3577b34da6a3ce929d0e0e4736", age_s=42)
    with running(stored=[recent]) as (_, _, jaeger):
        result = jaeger_checks(jaeger=jaeger.url)[TRACES]
    assert result.status is Status.WARN
    assert re.fullmatch(
        r"the newest trace of testboost-api is 4[2-5] s old \(no --api: the doctor traced no "
        r"request\)",
        result.detail,
    )
    stale = trace("4bf92f3577b34da6a3ce929d0e0e4736", age_s=7200)
    with running(stored=[stale]) as (_, _, jaeger):
        result = jaeger_checks(jaeger=jaeger.url)[TRACES]
    assert (result.status, result.detail) == (
        Status.FAIL,
        "no trace of testboost-api in the last 60 min",
    )


def test_not_given_is_skipped_saying_how_to_check_a_pushing_api() -> None:
    with running() as (fake_api, _, _):
        pushing = jaeger_checks(api=fake_api.url)
    assert {r.status for r in pushing.values()} == {Status.SKIP}
    assert pushing[ANSWERS].detail == (
        "no --jaeger URL given (the API pushes: pass --jaeger URL if its traces go to Jaeger)"
    )
    with running(exporter="prometheus") as (fake_api, _, _):
        pulled = jaeger_checks(api=fake_api.url)
    assert pulled[ANSWERS].detail == "no --jaeger URL given"


def test_something_else_than_jaeger_fails() -> None:
    with FakeServer({"/api/services": (200, ["not", "jaeger"])}) as other:
        result = jaeger_checks(jaeger=other.url)[ANSWERS]
    assert result.status is Status.FAIL
    assert result.detail.startswith("GET /api/services: not Jaeger's query API")
