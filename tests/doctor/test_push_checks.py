"""The push-path checks (doctor/checks/push.py) on fake HTTP: the API says how it exports,
the agent answers its health URL (vmagent's and the Collector's shapes) or not, and Prometheus
holds samples of a given age. test_doctor_e2e.py runs them on a real push stack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from doctor.checks.push import PUSHED_AGE
from doctor.model import Result, Status
from tests.doctor.fake_http import FakeServer
from tests.doctor.fake_prometheus import Prometheus
from tests.doctor.support import by_name, results_for, unreachable_hint

AGENT, FRESH = "agent answers", "pushed samples fresh"
AGE = PUSHED_AGE
# What the check asked before it selected the pushed series: any series of the name, a pull
# run's left in Prometheus' data included.
ANY_AGE = "time() - max(timestamp(testboost_llm_calls_total))"
VMAGENT = {"/health": (200, "OK")}
# The Collector's healthcheckv2 on :13133/status (otel-collector/config.yaml), as our build
# answers it.
COLLECTOR = {
    "/status": (
        200,
        {"start_time": "2026-01-01T00:00:00Z", "healthy": True, "status": "StatusOK"},
    )
}


def api(exporter: str, hold: str | None = "45") -> dict[str, Any]:
    """An API exporting by `exporter`, with a new-series hold of `hold` seconds (None: an API
    too old to say it)."""
    headers = {"x-testboost-metrics-exporter": exporter}
    if hold is not None:
        headers["x-testboost-new-series-hold-seconds"] = hold
    return {"/health": (200, {"status": "healthy"}), "/metrics": (200, "# nothing\n", headers)}


def closed_port_url() -> str:
    with FakeServer() as server:
        return server.url


@contextmanager
def servers(*routes: dict[str, Any]) -> Iterator[list[str]]:
    with ExitStack() as stack:
        yield [stack.enter_context(FakeServer(r)).url for r in routes]


def push_checks(
    exporter: str = "otlp",
    agent: dict[str, Any] | None = VMAGENT,
    agent_path: str = "/health",
    age: str | None = "0.7",
    fake: Prometheus | None = None,
    **options: Any,
) -> dict[str, Result]:
    prometheus = fake or Prometheus()
    prometheus.answers.setdefault(AGE, [] if age is None else [age])
    with servers(api(exporter), prometheus.routes(), agent or {}) as (api_url, prom_url, agent_url):
        given = {"api": api_url, "prometheus": prom_url, "timeout": 2}
        if agent is not None:
            given["otlp_agent"] = agent_url + agent_path
        return by_name(results_for("otlp-agent", **(given | options)))


def test_healthy_push_path_passes() -> None:
    results = push_checks()
    assert results[AGENT].status is Status.PASS
    assert results[AGENT].detail.endswith("/health answers 200 OK")
    assert (results[FRESH].status, results[FRESH].detail) == (
        Status.PASS,
        "newest pushed sample 0.7 s old (export interval 15 s)",
    )


def test_the_collectors_health_check_is_the_same_check_on_another_url() -> None:
    results = push_checks(agent=COLLECTOR, agent_path="/status")
    assert results[AGENT].status is Status.PASS
    assert '"healthy": true' in results[AGENT].detail


def test_push_mode_without_agent_url_warns_and_still_checks_freshness() -> None:
    results = push_checks(agent=None)
    assert results[AGENT].status is Status.WARN
    assert "pass --otlp-agent URL" in results[AGENT].detail
    assert results[FRESH].status is Status.PASS


def test_an_agent_that_does_not_answer_fails_naming_it() -> None:
    url = closed_port_url() + "/health"
    results = push_checks(otlp_agent=url)
    result = results[AGENT]
    assert result.status is Status.FAIL
    assert result.detail.startswith(f"OTLP agent {url} unreachable")
    assert result.hint == unreachable_hint("otlp-agent", otlp_agent=url)
    assert f"`curl -i {url}`" in result.hint


def test_an_unhealthy_agent_fails_with_its_answer() -> None:
    results = push_checks(agent={"/health": (503, "not ready")})
    assert results[AGENT].status is Status.FAIL
    assert results[AGENT].detail.endswith("/health answers HTTP 503 not ready")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in results[AGENT].hint


@pytest.mark.parametrize(
    ("age", "interval", "status"),
    [
        ("14.9", 15.0, Status.PASS),
        ("34.9", 15.0, Status.PASS),  # a late export is tolerated: 2 intervals + 5 s
        ("42.3", 15.0, Status.FAIL),
        ("6.5", 1.0, Status.PASS),
        ("8", 1.0, Status.FAIL),
    ],
)
def test_freshness_against_the_export_interval(age: str, interval: float, status: Status) -> None:
    result = push_checks(age=age, export_interval=interval)[FRESH]
    assert result.status is status


def test_stale_samples_fail_saying_nothing_is_delivered() -> None:
    result = push_checks(age="42.3")[FRESH]
    assert result.detail == (
        "pushed samples are 42 s old (export interval 15 s): the agent or the API's exporter "
        "is not delivering"
    )
    assert "--export-interval" in result.hint


def test_samples_gone_stale_in_prometheus_fail_too() -> None:
    """A scraped collector stopped (stale at once), or 5 minutes without a remote write:
    Prometheus no longer shows the series at all."""
    result = push_checks(age=None)[FRESH]
    assert result.status is Status.FAIL
    assert result.detail.startswith("no pushed testboost_llm_calls_total in Prometheus now")
    assert result.detail.endswith("the agent or the API's exporter is not delivering")


def test_a_pull_runs_leftover_series_are_not_taken_for_pushed_ones() -> None:
    """The issue: the collector killed, Prometheus still shows a pull run's series of the same
    name (208 s old, within its 5 min lookback); only the pushed series count, and there are
    none. test_push_selection.py runs PUSHED_AGE on real PromQL."""
    prometheus = Prometheus()
    prometheus.answers[ANY_AGE] = ["208"]
    prometheus.answers[AGE] = []
    result = push_checks(fake=prometheus)[FRESH]
    assert result.status is Status.FAIL
    assert result.detail.startswith("no pushed testboost_llm_calls_total in Prometheus now")


def test_pull_mode_skips_the_push_path() -> None:
    results = push_checks(exporter="prometheus", agent=None)
    assert {r.status for r in results.values()} == {Status.SKIP}
    assert results[AGENT].detail == "pull mode: nothing is pushed"
    assert results[FRESH].detail == "pull mode: Prometheus scrapes the API"


def test_without_the_api_an_agent_url_means_push() -> None:
    results = push_checks(api=None)
    assert results[AGENT].status is Status.PASS
    assert results[FRESH].status is Status.PASS
    nothing = push_checks(api=None, agent=None)
    assert {r.status for r in nothing.values()} == {Status.SKIP}


def test_prometheus_down_fails_freshness_with_prometheus_hint() -> None:
    url = closed_port_url()
    result = push_checks(prometheus=url)[FRESH]
    assert result.status is Status.FAIL
    assert "unreachable" in result.detail
    assert result.hint == unreachable_hint("prometheus", prometheus=url)
