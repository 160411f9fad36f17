"""Fix hints are filled in with where the doctor looks (doctor/hints.py): a stack moved off the
default ports gets commands and addresses with its own ports in every hint, never a default
one; after --stack, the local stack's commands and logs instead of compose's."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from doctor.checks import CHECKS
from doctor.cli import run_checks
from doctor.context import Options
from doctor.hints import UNREACHABLE, Hint, fill
from doctor.model import Result, Status
from doctor.shipped import DATASOURCE_UID, load_dashboards
from doctor.topology import Topology, detect
from tests.doctor.fake_prometheus import ACTIVE_SESSIONS_PANEL, Prometheus
from tests.doctor.test_cli import closed_port_url, run_main
from tests.doctor.test_prometheus_alertmanager_checks import Alertmanager
from tests.doctor.test_push_checks import AGE, api, servers

# Every port a hint used to hard-code: the compose ports, Grafana's, the Collector's health and
# Jaeger's query API.
DEFAULT_PORT = re.compile(r":(8000|9090|9093|3000|13133|16686)\b")
MOVED = Options(
    api="http://127.0.0.1:28000",
    prometheus="http://127.0.0.1:29090",
    alertmanager="http://127.0.0.1:29093",
    grafana="http://127.0.0.1:23000",
    otlp_agent="http://127.0.0.1:23133/status",
    jaeger="http://127.0.0.1:26686",
)
MOVED_URLS = (
    MOVED.api,
    MOVED.prometheus,
    MOVED.alertmanager,
    MOVED.grafana,
    MOVED.otlp_agent,
    MOVED.jaeger,
)
TEMPLATES: dict[str, Hint] = {
    **{f"{c.component} {c.name}": c.hint for c in CHECKS},
    **{f"{component} unreachable": hint for component, hint in UNREACHABLE.items()},
}
# The fields a probe adds to its fix (the scrape interval check's).
FOUND = {"interval_ms": "60000", "job": "otel-collector"}


@pytest.mark.parametrize("where", list(Topology))
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_hint_names_the_urls_given_and_no_default_port(name: str, where: Topology) -> None:
    hint = fill(TEMPLATES[name], replace(MOVED, topology=where), FOUND)
    assert not DEFAULT_PORT.search(hint), hint
    assert any(url in hint for url in MOVED_URLS), hint
    assert "{" not in hint and "URL>" not in hint, hint


@pytest.mark.parametrize("component", sorted(UNREACHABLE))
def test_a_component_that_does_not_answer_gets_its_own_url(component: str) -> None:
    url = getattr(MOVED, component.replace("-", "_"))
    assert f"`curl -i {url}" in fill(UNREACHABLE[component], MOVED)


def test_the_target_hint_names_the_compose_address_and_the_api_port() -> None:
    (target,) = [c for c in CHECKS if c.name == "target testboost-api UP"]
    hint = fill(target.hint, MOVED)
    assert "the testboost-api service" in hint and "on port 28000" in hint
    assert f"Open {MOVED.prometheus}/targets" in hint


def test_a_component_not_given_is_a_placeholder_not_a_default() -> None:
    for name, template in TEMPLATES.items():
        for where in Topology:
            hint = fill(template, Options(topology=where), FOUND)
            assert not DEFAULT_PORT.search(hint), (name, hint)
    assert "`curl -i <api URL>/health`" in fill(UNREACHABLE["api"], Options())


def test_the_compose_defaults_are_filled_in_like_any_url() -> None:
    hint = fill(UNREACHABLE["prometheus"], Options(prometheus="http://127.0.0.1:9090"))
    assert hint == (
        "Start Prometheus (compose `up -d prometheus`) and check `curl -i "
        "http://127.0.0.1:9090/-/ready`; `docker logs testboost-prometheus` says why it stopped."
    )


def test_after_stack_the_hints_name_the_stack_commands_and_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    elsewhere = Options(api=MOVED.api, otlp_agent=MOVED.otlp_agent, stack=tmp_path / "other")
    assert fill(UNREACHABLE["api"], elsewhere) == (
        "Start the API (`testboost stack up --workdir other`) and check `curl -i "
        f"{MOVED.api}/health`; `other/logs/api.log` says why it stopped."
    )
    assert "`other/logs/otel-collector.log`" in fill(UNREACHABLE["otlp-agent"], elsewhere)
    default = Options(alertmanager=MOVED.alertmanager, stack=(tmp_path / "var/stack").resolve())
    hint = fill(UNREACHABLE["alertmanager"], default)
    assert "(`testboost stack up`)" in hint and "`var/stack/logs/alertmanager.log`" in hint
    # No Grafana in the local stack: compose's way still.
    assert "compose `up -d grafana`" in fill(UNREACHABLE["grafana"], default)


def broken_everywhere(gates: bool) -> dict[str, dict[str, Any]]:
    """Routes of an API (pushing, refusing the key), a push agent, Prometheus, Alertmanager,
    Grafana and Jaeger. `gates`: each component's gate fails (it is down: the checks needing
    it are skipped); else the gates pass and every other check fails."""
    prometheus = Prometheus()
    prometheus.target.update(health="down", lastError="connection refused")
    prometheus.stored.discard("testboost_active_sessions")
    prometheus.rules[0].update(health="err", lastError="bad")
    prometheus.rules = [r for r in prometheus.rules if r["name"] != "HealthCheckFailed"]
    prometheus.alertmanagers = []
    prometheus.empty_queries.add(ACTIVE_SESSIONS_PANEL)
    prometheus.answers[AGE] = []  # no fresh pushed sample
    prometheus.fire("SlowAPIResponse", seconds_ago=120)  # and never received
    alertmanager = Alertmanager()
    alertmanager.status["config"]["original"] = ""
    alertmanager.status["cluster"]["status"] = "unknown"
    routes: dict[str, dict[str, Any]] = {
        "api": {
            "/health": (200, {"status": "healthy"}),
            # A hold shorter than two scrapes of the collector (every 15 s).
            "/metrics": (200, "", api("otlp", hold="1")["/metrics"][2]),
            "/api/v1/alerts": (401, {"detail": "missing or invalid API key"}),
        },
        "otlp-agent": {"/status": (200, {"healthy": True})},
        "prometheus": prometheus.routes(),
        "alertmanager": alertmanager.routes(),
        "grafana": {
            "/api/health": (200, {"database": "ok"}),
            f"/api/datasources/uid/{DATASOURCE_UID}/health": (404, {"message": "not found"}),
            **{f"/api/dashboards/uid/{d.uid}": (404, {}) for d in load_dashboards()},
        },
        # Knows no service, holds no trace: the doctor's traced request never arrives.
        "jaeger": {"/api/services": (200, {"data": None})},
    }
    if gates:
        down = {
            "api": ("/health", (503, {"status": "unhealthy", "checks": {"database": {}}})),
            "otlp-agent": ("/status", (503, {"healthy": False})),
            "prometheus": ("/-/ready", (503, "not ready")),
            "alertmanager": ("/-/ready", (503, "not ready")),
            "grafana": ("/api/health", (503, {"database": "failing"})),
            "jaeger": ("/api/services", (503, "not ready")),
        }
        for component, (path, reply) in down.items():
            routes[component][path] = reply
    return routes


def run_broken(gates: bool) -> tuple[list[Result], dict[str, str]]:
    routes = broken_everywhere(gates)
    with servers(*routes.values()) as found:
        url = dict(zip(routes, found, strict=True))
        given = {name.replace("-", "_"): value for name, value in url.items()}
        given["otlp_agent"] += "/status"
        results = run_checks(Options(**given, api_key="k", trace_wait=0.5))
    return results, url


def assert_fixes_name_the_urls(results: list[Result], url: dict[str, str]) -> None:
    for result in results:
        if result.status is Status.FAIL:
            assert any(u in result.hint for u in url.values()), result
            assert not DEFAULT_PORT.search(result.hint), result


def test_every_fix_printed_names_the_fake_servers_urls() -> None:
    """The gates up, every other check failing: each fix names where the doctor looked."""
    results, url = run_broken(gates=False)
    failed = {r.check.name for r in results if r.status is Status.FAIL}
    # Push mode: the API's /metrics is fine, its families are Prometheus' to check.
    passed = {"/metrics reachable", "catalog families and labels"}
    assert failed == {c.name for c in CHECKS if not c.gate} - passed
    assert_fixes_name_the_urls(results, url)
    (traces,) = [r for r in results if r.check.component == "jaeger" and not r.check.gate]
    assert traces.detail.startswith("a request the doctor traced (GET /api/v1/alerts) not in ")
    assert traces.detail.endswith("Jaeger knows no service 'testboost-api' (it knows: none)")


def test_every_gate_down_is_one_failure_and_skips_what_needs_it() -> None:
    results, url = run_broken(gates=True)
    assert {r.check.name for r in results if r.status is Status.FAIL} == {
        c.name for c in CHECKS if c.gate
    }
    assert_fixes_name_the_urls(results, url)
    others = [r for r in results if not r.check.gate]
    assert {r.status for r in others} == {Status.SKIP}
    # Each skipped for the first component it depends on that is down: its own.
    assert all(r.cause == r.check.component for r in others), others


def test_every_component_down_names_its_url_in_the_fix() -> None:
    url = {component: closed_port_url() for component in UNREACHABLE}
    code, out = run_main(
        *("--api", url["api"], "--prometheus", url["prometheus"]),
        *("--alertmanager", url["alertmanager"], "--grafana", url["grafana"]),
        *("--otlp-agent", url["otlp-agent"], "--jaeger", url["jaeger"], "--timeout", "2"),
    )
    assert code == 1
    fixes = [line.strip() for line in out.splitlines() if line.strip().startswith("fix:")]
    assert len(fixes) == len(UNREACHABLE)  # one per component
    for component, given in url.items():
        assert any(f"`curl -i {given}" in fix for fix in fixes), component
    assert not DEFAULT_PORT.search(out)


def target_hint(**options: Any) -> str:
    (target,) = [c for c in CHECKS if c.name == "target testboost-api UP"]
    return fill(target.hint, replace(MOVED, **options))


def test_the_local_stacks_fixes_name_its_prometheus_api_not_dockers(tmp_path: Path) -> None:
    """The issue: on the local stack, the target fix spoke of host.docker.internal and of a
    /targets page Debian's Prometheus does not serve (2.53: /classic/, 3.5: no UI)."""
    hint = target_hint(stack=tmp_path)
    assert "docker" not in hint.lower() and f"{MOVED.prometheus}/targets" not in hint
    assert f"`curl -s {MOVED.prometheus}/api/v1/targets`" in hint
    assert f"{MOVED.prometheus}/classic/targets" in hint
    assert f"`testboost stack up --workdir {tmp_path}`" in hint
    for check in CHECKS:
        local = fill(check.hint, replace(MOVED, stack=tmp_path), FOUND)
        assert f"{MOVED.prometheus}/graph" not in local, check.name


def test_kubernetes_fixes_name_kubectl_and_the_charts_objects() -> None:
    hint = target_hint(topology=Topology.KUBERNETES)
    assert "`kubectl -n testboost get servicemonitor,endpoints`" in hint
    assert "docker" not in hint.lower()
    assert "`kubectl -n testboost logs deployment/testboost`" in fill(
        UNREACHABLE["api"], replace(MOVED, topology=Topology.KUBERNETES)
    )


def test_compose_fixes_name_the_services_and_docker() -> None:
    hint = target_hint()
    assert "the testboost-api service on testboost-network" in hint
    assert "host.docker.internal" in hint
    assert "compose `up -d testboost-api`" in hint


@pytest.mark.parametrize(
    ("stack", "environ", "expected"),
    [
        (True, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, Topology.LOCAL),
        (False, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, Topology.KUBERNETES),
        (False, {"KUBERNETES_SERVICE_HOST": ""}, Topology.COMPOSE),
        (False, {}, Topology.COMPOSE),
    ],
)
def test_the_topology_detected(stack: bool, environ: dict[str, str], expected: Topology) -> None:
    assert detect(stack, environ) is expected


def test_topology_given_overrides_what_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from doctor.cli import add_arguments, options_from

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert options_from(parser.parse_args([])).topology is Topology.KUBERNETES
    given = parser.parse_args(["--topology", "compose"])
    assert options_from(given).topology is Topology.COMPOSE
