"""`testboost doctor` against the local stack of real processes (devstack): healthy, then the
API killed, then Alertmanager stopped; and a healthy push-mode stack. Grafana does not run
here: its checks are SKIP (test_grafana_checks.py covers them on recorded responses)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import Stack, StackConfig
from doctor.model import UNREACHABLE_HINTS
from tests.doctor.test_cli import TESTBOOST
from tests.support.waiting import until

API_KEY = "doctor-e2e-key"
HEADERS = {"X-API-Key": API_KEY}
TARGET = "target testboost-api UP"


def doctor(stack: Stack) -> tuple[int, dict[str, Any]]:
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


def healthy(stack: Stack) -> dict[str, Any]:
    """Doctor's verdict once Prometheus has scraped the workload (1 s intervals): no failure,
    and no warning either (until then the histogram panels have nothing to show)."""
    latest: dict[str, Any] = {}

    def passes() -> bool:
        code, latest["doc"] = doctor(stack)
        return code == 0 and not warned(latest["doc"])

    try:
        until(passes, timeout=30, interval=1, message="doctor passing on the healthy stack")
    except AssertionError:
        found = {**failed(latest["doc"]), **warned(latest["doc"])}
        raise AssertionError(json.dumps(found, indent=2, default=str)) from None
    return latest["doc"]


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
        assert {s for (component, _), s in every.items() if component != "grafana"} == {"PASS"}
        assert {s for (component, _), s in every.items() if component == "grafana"} == {"SKIP"}

        stack.stop("api", signal.SIGKILL)
        until(lambda: target_health(stack) == "down", timeout=15, interval=0.5, message="down")
        code, document = doctor(stack)
        broken = failed(document)
        assert code == 1
        api_checks = {key for key in every if key[0] == "api"}
        assert api_checks <= set(broken)
        assert all(broken[key]["hint"] == UNREACHABLE_HINTS["api"] for key in api_checks)
        assert ("prometheus", TARGET) in broken
        assert "connection refused" in broken[("prometheus", TARGET)]["detail"]
        assert "http://localhost:9090/targets" in broken[("prometheus", TARGET)]["hint"]
        assert not any(component == "alertmanager" for component, _ in broken)

        stack.start("api")
        until(lambda: target_health(stack) == "up", timeout=15, interval=0.5, message="up")
        stack.stop("alertmanager")
        code, document = doctor(stack)
        assert code == 1
        assert {component for component, _ in failed(document)} == {"alertmanager"}
        assert all(
            c["status"] == "FAIL" and c["hint"] == UNREACHABLE_HINTS["alertmanager"]
            for c in document["checks"]
            if c["component"] == "alertmanager"
        )
    assert time.monotonic() - started < 90


@pytest.mark.e2e
def test_doctor_recognises_push_mode(tmp_path: Path) -> None:
    config = StackConfig(workdir=tmp_path / "stack", mode="push", fast=True, api_key=API_KEY)
    with Stack(config) as stack:
        run_workflows(stack)
        document = healthy(stack)
    details = {(c["component"], c["check"]): c["detail"] for c in document["checks"]}
    assert details[("api", "/metrics reachable")].startswith("push mode (OTLP)")
    assert details[("api", "catalog families and labels")].startswith("push mode")
    assert details[("prometheus", "catalog families stored")] == "11/11 families"
