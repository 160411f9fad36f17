"""One component down is one failure (doctor/runner.py): its gate fails with the fix, the checks
that need it are SKIP naming it, the summary (table and JSON) names the cause once, and the
exit code stays 1. On fake HTTP; test_doctor_e2e.py stops real processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from doctor.checks import CHECKS
from doctor.cli import run_checks
from doctor.context import Context, Options
from doctor.model import Check, Outcome, Result, Status
from doctor.report import as_json, table
from doctor.runner import causes
from tests.doctor.fake_http import FakeServer
from tests.doctor.fake_prometheus import Prometheus
from tests.doctor.support import unreachable_hint
from tests.doctor.test_cli import closed_port_url, run_main
from tests.doctor.test_prometheus_alertmanager_checks import Alertmanager
from tests.doctor.test_push_checks import AGE, COLLECTOR, api

INBOX = {"/api/v1/alerts": (200, {"items": [], "total": 0})}


def push_api() -> dict[str, Any]:
    """A healthy API pushing its metrics: its own checks pass (Prometheus holds its families)."""
    return {**api("otlp"), **INBOX}


@contextmanager
def fakes(**routes: dict[str, Any] | None) -> Iterator[dict[str, str]]:
    """A fake server per component given; None: a port nobody listens on (it is down)."""
    with ExitStack() as stack:
        yield {
            name: closed_port_url() if r is None else stack.enter_context(FakeServer(r)).url
            for name, r in routes.items()
        }


def key(result: Result) -> str:
    return f"{result.check.component} {result.check.name}"


def test_prometheus_down_is_one_failure_and_the_checks_reading_it_are_skipped() -> None:
    with fakes(api=push_api(), prometheus=None, alertmanager=Alertmanager().routes()) as url:
        results = run_checks(Options(**url, api_key="k", timeout=2))
    failed = [r for r in results if r.status is Status.FAIL]
    assert [key(r) for r in failed] == ["prometheus ready"]
    (ready,) = failed
    assert ready.hint == unreachable_hint("prometheus", prometheus=url["prometheus"])
    skipped = {key(r): r for r in results if r.cause == "prometheus"}
    assert set(skipped) == {
        "prometheus target testboost-api UP",
        "prometheus catalog families stored",
        "prometheus rules loaded and healthy",
        "prometheus the seven guide alerts",
        "prometheus Alertmanager configured",
        "prometheus dashboard queries return data",
        "prometheus scrape interval within the API's new-series hold",
        "otlp-agent pushed samples fresh",
    }
    assert {(r.status, r.detail, r.hint) for r in skipped.values()} == {
        (Status.SKIP, "prometheus is down (its 'ready' check failed)", "")
    }
    # What does not read Prometheus still runs, and passes.
    assert {r.status for r in results if r.check.component in ("api", "alertmanager")} == {
        Status.PASS
    }
    assert causes(results) == [(ready, len(skipped))]


def test_prometheus_down_in_the_table_and_json_names_the_one_cause() -> None:
    with fakes(api=push_api(), prometheus=None, alertmanager=Alertmanager().routes()) as url:
        argv = ("--api", url["api"], "--prometheus", url["prometheus"])
        argv += ("--alertmanager", url["alertmanager"], "--api-key", "k", "--timeout", "2")
        code, text = run_main(*argv)
        json_code, out = run_main(*argv, "--json")
    fix = unreachable_hint("prometheus", prometheus=url["prometheus"])
    assert code == json_code == 1
    *_, counts, cause = text.splitlines()
    # Warned: push mode, no --otlp-agent; skipped: Prometheus', Grafana's and Jaeger's.
    assert counts == "9 passed, 1 warned, 1 failed, 13 skipped — FAILED: prometheus ready"
    assert cause.startswith(f"cause: prometheus is down ({url['prometheus']} unreachable: ")
    assert cause.endswith(f"), 8 check(s) skipped; fix: {fix}")
    assert text.count(f"fix: {fix}") == 2  # under the failed check, and in the summary
    document = json.loads(out)
    assert document["ok"] is False
    assert document["summary"]["fail"] == 1
    (found,) = document["causes"]
    assert {k: v for k, v in found.items() if k != "detail"} == {
        "component": "prometheus",
        "check": "ready",
        "hint": fix,
        "skipped": 8,
    }
    by_cause = [c for c in document["checks"] if c["cause"] == "prometheus"]
    assert len(by_cause) == 8 and {c["status"] for c in by_cause} == {"SKIP"}
    assert {c["cause"] for c in document["checks"] if c not in by_cause} == {None}


def push_stack(collector: dict[str, Any] | None, **more: dict[str, Any] | None) -> list[Result]:
    """A pushing API and Prometheus; the collector as given (None: stopped). A stopped
    collector leaves Prometheus without fresh pushed series, as a real one would."""
    prometheus = Prometheus()
    if collector is None:
        prometheus.stored.clear()
        prometheus.answers[AGE] = []
    else:
        prometheus.answers[AGE] = ["0.5"]
    routes = {"api": push_api(), "prometheus": prometheus.routes(), **more}
    with fakes(**routes, otlp_agent=collector) as url:
        url["otlp_agent"] += "/status"
        return run_checks(Options(**url, api_key="k", timeout=2, trace_wait=0.5))


def test_collector_down_in_push_mode_is_one_cause() -> None:
    results = push_stack(None)
    failed = [key(r) for r in results if r.status is Status.FAIL]
    assert failed == ["otlp-agent agent answers"]
    assert {key(r) for r in results if r.cause == "otlp-agent"} == {
        "prometheus catalog families stored",
        "prometheus dashboard queries return data",
        "otlp-agent pushed samples fresh",
    }
    # Prometheus' own checks, and its view of the API's target, still run.
    assert next(r for r in results if r.check.name == "rules loaded and healthy").status is (
        Status.PASS
    )


def test_collector_down_skips_the_trace_check_too() -> None:
    jaeger = {"/api/services": (200, {"data": ["testboost-api"]})}
    results = push_stack(None, jaeger=jaeger)
    by_key = {key(r): r for r in results}
    assert by_key["jaeger query API answers"].status is Status.PASS
    traces = by_key["jaeger the API's traces arrive"]
    assert (traces.status, traces.cause) == (Status.SKIP, "otlp-agent")
    assert [key(r) for r in results if r.status is Status.FAIL] == ["otlp-agent agent answers"]


def test_the_same_stack_with_its_collector_up_passes() -> None:
    results = push_stack(COLLECTOR)
    assert not [r for r in results if r.status is Status.FAIL], results
    assert causes(results) == []


def test_api_down_skips_prometheus_view_of_it() -> None:
    with fakes(api=None, prometheus=Prometheus().routes()) as url:
        results = run_checks(Options(**url, timeout=2))
    assert [key(r) for r in results if r.status is Status.FAIL] == ["api /health"]
    assert {key(r) for r in results if r.cause == "api"} == {
        "api API key accepted",
        "api /metrics reachable",
        "api catalog families and labels",
        "prometheus target testboost-api UP",
        "prometheus catalog families stored",
        "prometheus dashboard queries return data",
        "prometheus scrape interval within the API's new-series hold",
        "otlp-agent pushed samples fresh",
    }


def test_an_agent_down_in_pull_mode_skips_traces_not_the_scraped_series() -> None:
    """A collector carrying only traces (`stack up --traces` in pull mode): Prometheus scrapes
    the API, so its series do not depend on the collector; the traces do."""
    pull = {**api("prometheus"), **INBOX}
    jaeger = {"/api/services": (200, {"data": ["testboost-api"]})}
    routes = {"prometheus": Prometheus().routes(), "jaeger": jaeger}
    with fakes(api=pull, otlp_agent=None, **routes) as url:
        results = run_checks(Options(**url, timeout=2))
    by_key = {key(r): r for r in results}
    assert by_key["otlp-agent agent answers"].status is Status.FAIL
    assert {key(r) for r in results if r.cause} == {
        "jaeger the API's traces arrive",
        "otlp-agent pushed samples fresh",  # the agent's own; in pull mode a SKIP anyway
    }
    assert by_key["prometheus catalog families stored"].status is Status.PASS
    assert by_key["prometheus dashboard queries return data"].cause is None


def test_a_gate_that_warns_or_is_skipped_marks_nothing_down() -> None:
    calls: list[str] = []

    def probe(name: str, outcome: Outcome) -> Check:
        def run(_: Any) -> Outcome:
            calls.append(name)
            return outcome

        return Check("api", name, "fix", run, gate=name == "gate")

    checks = [probe("gate", Outcome(True, "hm", warning=True)), probe("after", Outcome(True, "ok"))]
    results = run_checks(Options(api="http://127.0.0.1:1"), checks)
    assert [r.status for r in results] == [Status.WARN, Status.PASS]
    assert calls == ["gate", "after"]
    none_given = run_checks(Options(), checks)
    assert [r.cause for r in none_given] == [None, None]


def test_gates_run_first_but_print_in_place() -> None:
    order: list[str] = []

    def check(component: str, name: str, gate: bool = False) -> Check:
        def run(_: Any) -> Outcome:
            order.append(name)
            return Outcome(False, "down")

        return Check(component, name, "fix", run, gate=gate, requires=("api",))

    checks = [check("prometheus", "reads the API"), check("api", "api gate", gate=True)]
    results = run_checks(Options(api="http://a", prometheus="http://p"), checks)
    assert order == ["api gate"]
    assert [r.check.name for r in results] == ["reads the API", "api gate"]
    assert (results[0].status, results[0].cause) == (Status.SKIP, "api")
    text = table(results)
    assert "cause: api is down (down), 1 check(s) skipped; fix: fix" in text
    assert json.loads(as_json(results, {}))["causes"][0]["skipped"] == 1


def test_every_check_depends_on_components_the_doctor_knows() -> None:
    from doctor.context import COMPONENTS

    gates = [c.component for c in CHECKS if c.gate]
    assert sorted(gates) == sorted(COMPONENTS)  # one gate per component
    context = Context(Options())  # no URL: push mode unknown, the widest dependencies
    assert {c for check in CHECKS for c in check.depends_on(context)} <= set(COMPONENTS)
