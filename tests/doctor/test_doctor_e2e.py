"""`testboost doctor` against the local stack of real processes (devstack): healthy, then the
API killed, then Alertmanager stopped; a push-mode stack, healthy, then its agent stopped; and a
push-mode stack with traces, healthy, then its Jaeger stopped. Each stopped piece is one
failure, the checks that need it SKIP naming it. Grafana does not run here: its checks are SKIP
(test_grafana_checks.py covers them on recorded responses)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from devstack import Stack, StackConfig
from devstack.stack import READY
from telemetry.catalog import CATALOG
from tests.doctor.support import unreachable_hint
from tests.doctor.test_cli import TESTBOOST
from tests.support.waiting import until

API_KEY = "doctor-e2e-key"
HEADERS = {"X-API-Key": API_KEY}
TARGET = "target testboost-api UP"
INTERVAL = "scrape interval within the API's new-series hold"
FAMILIES = f"{len(CATALOG)}/{len(CATALOG)} families"
AGENT = "otel-collector"
TRACES = ("jaeger", "the API's traces arrive")


def doctor(stack: Stack, *extra: str) -> tuple[int, dict[str, Any]]:
    urls = stack.urls
    done = subprocess.run(
        [
            str(TESTBOOST),
            "doctor",
            "--json",
            "--timeout",
            "3",
            "--api",
            urls["api"],
            "--prometheus",
            urls["prometheus"],
            "--alertmanager",
            urls["alertmanager"],
            "--api-key",
            API_KEY,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr == ""
    return done.returncode, json.loads(done.stdout)


def statuses(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(c["component"], c["check"]): c["status"] for c in document["checks"]}


def failed(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, str]]:
    return {(c["component"], c["check"]): c for c in document["checks"] if c["status"] == "FAIL"}


def warned(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, str]]:
    return {(c["component"], c["check"]): c for c in document["checks"] if c["status"] == "WARN"}


def skipped_for(document: dict[str, Any], component: str) -> set[tuple[str, str]]:
    """The checks SKIP because `component` is down."""
    return {
        (c["component"], c["check"])
        for c in document["checks"]
        if c["status"] == "SKIP" and c["cause"] == component
    }


def the_cause(document: dict[str, Any]) -> dict[str, Any]:
    (cause,) = document["causes"]
    return dict(cause)


def run_workflows(stack: Stack, count: int = 3) -> None:
    """A little traffic, so histogram panels (workflow, LLM, HTTP latency) have data."""
    api = stack.urls["api"]
    ids = [
        httpx.post(
            f"{api}/api/v2/sessions",
            json={"session_type": "impact_analysis", "project_path": "/p"},
            headers=HEADERS,
        ).json()["id"]
        for _ in range(count)
    ]

    def finished() -> bool:
        return all(
            httpx.get(f"{api}/api/v2/sessions/{i}", headers=HEADERS).json()["status"] == "completed"
            for i in ids
        )

    until(finished, timeout=20, interval=0.2, message="workflows completed")


def healthy(stack: Stack, *extra: str) -> dict[str, Any]:
    """Doctor's verdict once Prometheus has scraped the workload (1 s intervals): no failure,
    and no warning either (until then the histogram panels have nothing to show)."""
    latest: dict[str, Any] = {}

    def passes() -> bool:
        code, latest["doc"] = doctor(stack, *extra)
        return code == 0 and not warned(latest["doc"])

    try:
        until(passes, timeout=30, interval=1, message="doctor passing on the healthy stack")
    except AssertionError:
        found = {**failed(latest["doc"]), **warned(latest["doc"])}
        listed = {" ".join(key): check["detail"] for key, check in found.items()}
        raise AssertionError(json.dumps(listed, indent=2)) from None
    return latest["doc"]


def stored(stack: Stack, series: str) -> bool:
    answer = httpx.get(f"{stack.urls['prometheus']}/api/v1/query", params={"query": series})
    return bool(answer.json()["data"]["result"])


def target_health(stack: Stack) -> str:
    targets = httpx.get(f"{stack.urls['prometheus']}/api/v1/targets").json()["data"]
    (target,) = [t for t in targets["activeTargets"] if t["scrapePool"] == "testboost-api"]
    return str(target["health"])


@pytest.mark.e2e
def test_doctor_passes_then_names_the_stopped_piece(tmp_path: Path) -> None:
    started = time.monotonic()
    config = StackConfig(workdir=tmp_path / "stack", mode="pull", fast=True, api_key=API_KEY)
    with Stack(config) as stack:
        run_workflows(stack)
        document = healthy(stack)
        every = statuses(document)
        # No --grafana, nor --jaeger; pull mode pushes nothing.
        skipped = ("grafana", "otlp-agent", "jaeger")
        assert {s for (component, _), s in every.items() if component not in skipped} == {"PASS"}
        assert {s for (component, _), s in every.items() if component in skipped} == {"SKIP"}

        stack.stop("api", signal.SIGKILL)
        until(lambda: target_health(stack) == "down", timeout=15, interval=0.5, message="down")
        code, document = doctor(stack)
        broken = failed(document)
        assert code == 1
        # One failure, the API's own gate; what reads the API (Prometheus' target and the
        # series scraped from it included) is skipped naming it.
        assert set(broken) == {("api", "/health")}, broken
        down = unreachable_hint("api", api=stack.urls["api"])
        assert broken[("api", "/health")]["hint"] == down
        assert "connection refused" in broken[("api", "/health")]["detail"].lower()
        api_checks = {key for key in every if key[0] == "api"} - {("api", "/health")}
        assert skipped_for(document, "api") == api_checks | {
            ("prometheus", TARGET),
            ("prometheus", "catalog families stored"),
            ("prometheus", "dashboard queries return data"),
            ("prometheus", INTERVAL),
            ("otlp-agent", "pushed samples fresh"),
        }
        assert the_cause(document)["hint"] == down

        stack.start("api")
        until(lambda: target_health(stack) == "up", timeout=15, interval=0.5, message="up")
        # The new process' HTTP counter appears with its first request: wait for its scrape.
        until(lambda: stored(stack, "testboost_http_requests_total"), timeout=15, interval=0.5)
        stack.stop("alertmanager")
        code, document = doctor(stack)
        assert code == 1
        assert set(failed(document)) == {("alertmanager", "ready")}
        stopped = unreachable_hint("alertmanager", alertmanager=stack.urls["alertmanager"])
        assert failed(document)[("alertmanager", "ready")]["hint"] == stopped
        assert skipped_for(document, "alertmanager") == {
            key for key in every if key[0] == "alertmanager" and key[1] != "ready"
        }
        assert the_cause(document) | {"detail": ""} == {
            "component": "alertmanager",
            "check": "ready",
            "detail": "",
            "hint": stopped,
            "skipped": 4,
        }
    assert time.monotonic() - started < 90


def agent_health(stack: Stack) -> str:
    """The health URL of the push stack's collector: where devstack waits for it to be ready."""
    port, path = READY[AGENT]
    return stack.urls[port] + path


@pytest.mark.e2e
@pytest.mark.parametrize("via", ["scrape", "remote-write"])
def test_doctor_checks_the_push_path(
    tmp_path: Path, via: Literal["scrape", "remote-write"]
) -> None:
    """The collector hands metrics to Prometheus by its scraped `prometheus` exporter (the
    series go stale when it stops) or by remote write (they stay, and age)."""
    config = StackConfig(
        workdir=tmp_path / "stack", mode="push", fast=True, api_key=API_KEY, push_via=via
    )
    with Stack(config) as stack:
        health = agent_health(stack)
        push = ("--otlp-agent", health, "--export-interval", "1")  # fast: 1 s exports
        run_workflows(stack)
        document = healthy(stack, *push)
        unchecked = ("grafana", "jaeger")  # no Grafana here; this stack sends no traces
        checked = [c for c in document["checks"] if c["component"] not in unchecked]
        assert {c["status"] for c in checked if c["check"] != INTERVAL} == {"PASS"}
        details = {(c["component"], c["check"]): c["detail"] for c in document["checks"]}
        # Remote write: no scrape of the collector to compare the API's hold with.
        interval = {"scrape": "PASS", "remote-write": "SKIP"}[via]
        assert statuses(document)[("prometheus", INTERVAL)] == interval, details
        assert details[("api", "/metrics reachable")].startswith("push mode (OTLP)")
        assert details[("api", "catalog families and labels")].startswith("push mode")
        assert details[("prometheus", "catalog families stored")] == FAMILIES
        assert details[("otlp-agent", "agent answers")].startswith(f"{health} answers 200")
        assert details[("otlp-agent", "pushed samples fresh")].startswith("newest pushed sample")

        # Without --otlp-agent nothing checks the agent: said, not failed.
        code, document = doctor(stack, "--export-interval", "1")
        assert code == 0
        assert statuses(document)[("otlp-agent", "agent answers")] == "WARN"

        stack.stop(AGENT)
        # Told where the agent is: it is the one cause, what reads through it is skipped.
        code, document = doctor(stack, *push)
        broken = failed(document)
        assert code == 1
        assert set(broken) == {("otlp-agent", "agent answers")}, broken
        unreachable = broken[("otlp-agent", "agent answers")]
        assert unreachable["detail"].startswith(f"OTLP agent {health} unreachable")
        assert unreachable["hint"] == unreachable_hint("otlp-agent", otlp_agent=health)
        assert skipped_for(document, "otlp-agent") == {
            ("prometheus", "catalog families stored"),
            ("prometheus", "dashboard queries return data"),
            ("otlp-agent", "pushed samples fresh"),
        }
        assert the_cause(document)["hint"] == unreachable["hint"]

        # Not told: nothing marks the agent down, and the samples' age is what notices.
        latest: dict[str, Any] = {}

        def stale() -> bool:
            latest["code"], latest["doc"] = doctor(stack, "--export-interval", "1")
            return ("otlp-agent", "pushed samples fresh") in failed(latest["doc"])

        # Scraped: stale at the first failed scrape. Remote-written: the check fails 2 export
        # intervals + 5 s after the last push, while Prometheus still shows the series.
        until(stale, timeout=30, interval=1, message="doctor failing on stale pushed samples")
        broken = failed(latest["doc"])
        assert latest["code"] == 1 and latest["doc"]["causes"] == []
        stale_detail = broken[("otlp-agent", "pushed samples fresh")]["detail"]
        assert stale_detail.endswith(
            "export interval 1 s): the agent or the API's exporter is not delivering"
        )
        if via == "remote-write":  # the series stay: nothing but the push checks notices
            assert re.fullmatch(
                r"pushed samples are \d+ s old \(export interval 1 s\).*", stale_detail
            )
            assert set(broken) == {("otlp-agent", "pushed samples fresh")}
        else:
            assert stale_detail.startswith("no pushed testboost_llm_calls_total in Prometheus now")


@pytest.mark.e2e
def test_doctor_checks_the_trace_path_and_names_a_stopped_jaeger(tmp_path: Path) -> None:
    """Push mode with traces (what `make stack-push` runs): the doctor's own traced request
    reaches Jaeger; Jaeger stopped is one failure, the trace check skipped naming it; started
    again (its memory store empty), the next traced request makes it whole."""
    config = StackConfig(
        workdir=tmp_path / "stack", mode="push", fast=True, api_key=API_KEY, traces=True
    )
    with Stack(config) as stack:
        jaeger = stack.urls["jaeger"]
        given = ("--otlp-agent", agent_health(stack), "--export-interval", "1")
        given += ("--jaeger", jaeger)
        run_workflows(stack)
        document = healthy(stack, *given)
        assert {c["status"] for c in document["checks"] if c["component"] != "grafana"} == {"PASS"}
        details = {(c["component"], c["check"]): c["detail"] for c in document["checks"]}
        # The services Jaeger knew when asked first (the workflows' traces may still be in the
        # API's 5 s batch then).
        assert details[("jaeger", "query API answers")].startswith("/api/services: ")
        assert re.fullmatch(
            r"a request the doctor traced \(GET /api/v1/alerts\) reached Jaeger as "
            r"testboost-api in \d+\.\d s",
            details[TRACES],
        ), details[TRACES]

        stack.stop("jaeger")
        code, document = doctor(stack, *given)
        broken = failed(document)
        assert code == 1
        assert set(broken) == {("jaeger", "query API answers")}, broken
        stopped = unreachable_hint("jaeger", jaeger=jaeger)
        assert broken[("jaeger", "query API answers")]["hint"] == stopped
        assert f"`curl -i {jaeger}/api/services`" in stopped
        assert skipped_for(document, "jaeger") == {TRACES}
        assert the_cause(document) | {"detail": ""} == {
            "component": "jaeger",
            "check": "query API answers",
            "detail": "",
            "hint": stopped,
            "skipped": 1,
        }

        stack.start("jaeger")
        latest: dict[str, Any] = {}

        def whole() -> bool:
            latest["code"], latest["doc"] = doctor(stack, *given)
            return latest["code"] == 0

        # The collector reconnects to Jaeger with gRPC's back-off (seconds, here).
        try:
            until(whole, timeout=60, interval=1, message="doctor passing after Jaeger restarted")
        except AssertionError:
            found = list(failed(latest["doc"]).values())
            raise AssertionError(json.dumps(found, indent=2)) from None
        assert statuses(latest["doc"])[TRACES] == "PASS"
