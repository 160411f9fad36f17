"""Prometheus and Alertmanager checks in the states the live tests cannot easily produce (a
rule in error, an alert missing, a receiver without notifier, an alert lost between the two).
The healthy shapes follow the Prometheus HTTP API and Alertmanager v2 API; the end-to-end
test (test_doctor_e2e.py) runs the same checks against the real binaries."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from doctor.model import Status
from telemetry.catalog import GUIDE_ALERTS
from tests.doctor.fake_http import FakeServer
from tests.doctor.fake_prometheus import ACTIVE_SESSIONS_PANEL, Prometheus
from tests.doctor.support import by_name, results_for
from tests.monitoring.queries import alert_rules, dashboard_queries

AM_STATUS = json.loads(
    (Path(__file__).parent / "fixtures" / "alertmanager-status.json").read_text()
)


class Alertmanager:
    def __init__(self) -> None:
        self.status = copy.deepcopy(AM_STATUS)
        self.alerts: list[str] = []
        self.inhibited: list[str] = []  # held, but suppressed (an inhibit rule, a silence)

    def routes(self) -> dict[str, Any]:
        def alert(name: str, state: str) -> dict[str, Any]:
            return {
                "labels": {"alertname": name, "severity": "critical"},
                "status": {"state": state},
            }

        return {
            "/-/ready": (200, "OK"),
            "/api/v2/status": (200, self.status),
            "/api/v2/alerts": (
                200,
                [alert(n, "active") for n in self.alerts]
                + [alert(n, "suppressed") for n in self.inhibited],
            ),
        }


def run(prometheus: Prometheus, alertmanager: Alertmanager) -> dict[str, Any]:
    with FakeServer(prometheus.routes()) as p, FakeServer(alertmanager.routes()) as a:
        results = results_for("prometheus", prometheus=p.url, alertmanager=a.url)
        results += results_for("alertmanager", prometheus=p.url, alertmanager=a.url)
    return {f"{r.check.component} {r.check.name}": r for r in results}


def failures(results: dict[str, Any]) -> dict[str, str]:
    return {name: r.detail for name, r in results.items() if r.status is Status.FAIL}


def test_healthy_shapes_pass() -> None:
    results = run(Prometheus(), Alertmanager())
    assert failures(results) == {}
    assert results["alertmanager receivers for critical and warning"].detail == (
        "critical → critical-receiver (webhook); warning → warning-receiver (webhook)"
    )


# Without a configuration there is no routing tree either.
ALSO_FAILS = {"no configuration": ["alertmanager receivers for critical and warning"]}


def change(prometheus: Prometheus, alertmanager: Alertmanager, case: str) -> None:
    if case == "target down":
        prometheus.target.update(health="down", lastError="server returned HTTP status 401")
    elif case == "no target":
        prometheus.target.update(scrapePool="other", labels={"job": "other", "instance": "x"})
    elif case == "histogram without buckets":
        prometheus.stored.discard("testboost_http_request_duration_seconds_bucket")
    elif case == "rule in error":
        prometheus.rules[0].update(
            health="err", lastError="vector contains metrics with the same labelset"
        )
    elif case == "alert missing":
        prometheus.rules = [r for r in prometheus.rules if r["name"] != "HealthCheckFailed"]
    elif case == "no alertmanager":
        prometheus.alertmanagers = []
    elif case == "panel without data":
        prometheus.empty_queries.add(ACTIVE_SESSIONS_PANEL)
    elif case == "cluster broken":
        alertmanager.status["cluster"]["status"] = "unknown"
    elif case == "no configuration":
        alertmanager.status["config"]["original"] = ""
    elif case == "receiver without notifier":
        original = alertmanager.status["config"]["original"]
        alertmanager.status["config"]["original"] = original.replace(
            "- name: warning-receiver\n  webhook_configs:", "- name: warning-receiver\n  x_unused:"
        )
    elif case == "alert lost":
        prometheus.fire("HealthCheckFailed", seconds_ago=120)


@pytest.mark.parametrize(
    ("case", "failed", "words"),
    [
        (
            "target down",
            "prometheus target testboost-api UP",
            "error: server returned HTTP status 401",
        ),
        (
            "no target",
            "prometheus target testboost-api UP",
            "no active target in job 'testboost-api'",
        ),
        (
            "histogram without buckets",
            "prometheus catalog families stored",
            "testboost_http_request_duration_seconds without "
            "testboost_http_request_duration_seconds_bucket",
        ),
        ("rule in error", "prometheus rules loaded and healthy", "same labelset"),
        ("alert missing", "prometheus the seven guide alerts", "missing: HealthCheckFailed"),
        ("no alertmanager", "prometheus Alertmanager configured", "no Alertmanager"),
        (
            "panel without data",
            "prometheus dashboard queries return data",
            f"1/{len(dashboard_queries())} queries without data: "
            "TestBoost Overview > Active Sessions",
        ),
        ("cluster broken", "alertmanager cluster status", "unknown, 0 peer(s)"),
        ("no configuration", "alertmanager configuration loaded", "no configuration loaded"),
        (
            "receiver without notifier",
            "alertmanager receivers for critical and warning",
            "warning → warning-receiver (no notifier)",
        ),
        (
            "alert lost",
            "alertmanager alerts reaching Alertmanager",
            "firing in Prometheus, not here: HealthCheckFailed",
        ),
    ],
)
def test_each_broken_piece_is_named(case: str, failed: str, words: str) -> None:
    prometheus, alertmanager = Prometheus(), Alertmanager()
    change(prometheus, alertmanager, case)
    results = run(prometheus, alertmanager)
    assert list(failures(results)) == [failed, *ALSO_FAILS.get(case, [])]
    assert words in results[failed].detail
    assert results[failed].hint and "{" not in results[failed].hint  # filled in: test_hints.py


def test_firing_alerts_are_listed() -> None:
    prometheus, alertmanager = Prometheus(), Alertmanager()
    prometheus.fire("HealthCheckFailed", seconds_ago=120)
    alertmanager.alerts = ["HealthCheckFailed"]
    result = run(prometheus, alertmanager)["alertmanager alerts reaching Alertmanager"]
    assert result.status is Status.PASS
    assert result.detail == "firing: HealthCheckFailed (critical)"


def test_an_inhibited_alert_was_received() -> None:
    """While HealthCheckFailed fires, the inhibit rule holds the API's other alerts back on
    purpose: Alertmanager has them, so they are not "firing in Prometheus, not here"."""
    prometheus, alertmanager = Prometheus(), Alertmanager()
    prometheus.fire("HealthCheckFailed", seconds_ago=120)
    prometheus.fire("TooManyActiveSessions", seconds_ago=120)
    alertmanager.alerts = ["HealthCheckFailed"]
    alertmanager.inhibited = ["TooManyActiveSessions"]
    result = run(prometheus, alertmanager)["alertmanager alerts reaching Alertmanager"]
    assert result.status is Status.PASS, result.detail
    assert result.detail == "firing: HealthCheckFailed (critical) (1 silenced or inhibited)"


@pytest.mark.parametrize("seconds_ago", [2, 70])
def test_an_alert_that_just_started_firing_may_still_be_on_its_way(seconds_ago: float) -> None:
    """70 s: its first send dropped while Prometheus had not yet found Alertmanager, the next
    comes with the one-minute re-send."""
    prometheus = Prometheus()
    prometheus.fire("HealthCheckFailed", seconds_ago=seconds_ago)
    result = run(prometheus, Alertmanager())["alertmanager alerts reaching Alertmanager"]
    assert result.status is Status.PASS and result.detail == "no alert firing"


def test_guide_alerts_are_the_seven_of_the_guide() -> None:
    assert len(GUIDE_ALERTS) == 7
    assert set(GUIDE_ALERTS) <= {r["alert"] for r in alert_rules()}


def test_dashboard_check_without_dashboards_says_where_it_looked(tmp_path: Path) -> None:
    with FakeServer(Prometheus().routes()) as p:
        results = by_name(results_for("prometheus", prometheus=p.url, monitoring_dir=tmp_path))
    result = results["dashboard queries return data"]
    assert result.status is Status.FAIL
    assert f"no dashboards in {tmp_path}" in result.detail and "--monitoring-dir" in result.detail


def settling_then(final: str, settling_answers: int) -> tuple[Alertmanager, Any]:
    """An Alertmanager whose /api/v2/status says `settling` `settling_answers` times, then
    `final`: what one just started with clustering on answers."""
    alertmanager = Alertmanager()
    answers = {"count": 0}

    def status(_: dict[str, list[str]]) -> tuple[int, Any]:
        answers["count"] += 1
        body = copy.deepcopy(alertmanager.status)
        settling = answers["count"] <= settling_answers
        body["cluster"] = {"status": "settling" if settling else final, "peers": [{}]}
        return 200, body

    return alertmanager, status


def cluster_check(settling_answers: int, settle_wait: float) -> Any:
    alertmanager, status = settling_then("ready", settling_answers)
    with FakeServer({**alertmanager.routes(), "/api/v2/status": status}) as a:
        results = results_for("alertmanager", alertmanager=a.url, settle_wait=settle_wait)
    assert not [r for r in results if r.status is Status.FAIL]
    return by_name(results)["cluster status"]


def test_a_cluster_still_settling_is_waited_for() -> None:
    result = cluster_check(settling_answers=3, settle_wait=5)
    assert result.status is Status.PASS
    assert result.detail.startswith("ready, 1 peer(s) (settled while the doctor waited ")


def test_a_cluster_settling_for_longer_is_a_warning_not_a_failure() -> None:
    started = time.monotonic()
    result = cluster_check(settling_answers=1000, settle_wait=1)
    assert time.monotonic() - started < 5
    assert result.status is Status.WARN
    assert result.detail.startswith("still settling after 1 s, 1 peer(s): a start's transient")
    assert result.hint == ""
