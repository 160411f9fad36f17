"""Alertmanager config, checked by amtool 0.28 (the version compose runs): validity, routing
by severity, the webhook's authentication, and the commented receiver templates; inhibition on
a real Alertmanager 0.28 running the committed file."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from alert_rules import ALERTS, PIPELINE_ALERTS, SLO_ERRORS_TOO_FEW, WATCHDOG

from devstack.processes import free_port
from tests.support.waiting import until

from .queries import alert_rules, slo_alert_rules
from .tools import REPO, run_tool, tool_path

CONFIG = REPO / "monitoring" / "alertmanager" / "alertmanager.yml"
WEBHOOK = "http://testboost-api:8000/api/v1/alerts/webhook"
KEY_FILE = "/etc/alertmanager/secrets/testboost-api-key"
API_DOWN = "HealthCheckFailed"  # the page, per replica
# No replica answers: holds the API's other alerts back, notified to no one.
UNAVAILABLE = "APIUnavailable"
RECEIVERS = {"critical": "critical-receiver", "warning": "warning-receiver", "none": "inhibit-only"}


def routes_test(*labels: str) -> str:
    result = run_tool("amtool", "config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


@pytest.mark.tools
def test_amtool_check_config() -> None:
    result = run_tool("amtool", "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 5 receivers" in result.stdout
    assert " - 4 inhibit rules" in result.stdout


@pytest.mark.tools
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("alertname=HighLLMErrorRate", "severity=critical"), "critical-receiver"),
        (("alertname=SlowAPIResponse", "severity=warning"), "warning-receiver"),
        (("alertname=Something", "severity=info"), "default-receiver"),
        (("alertname=NoSeverity",), "default-receiver"),
        (("alertname=APIUnavailable", "severity=none"), "inhibit-only"),
        (("alertname=Watchdog", "severity=none"), "watchdog"),
    ],
)
def test_routing_by_severity(labels: tuple[str, ...], receiver: str) -> None:
    assert routes_test(*labels) == receiver


@pytest.mark.tools
def test_every_alert_rule_reaches_its_severity_receiver() -> None:
    pipeline = [alert_as_rule(a) for a in PIPELINE_ALERTS if a.name != WATCHDOG]
    for rule in alert_rules() + pipeline:
        severity = rule["labels"]["severity"]
        assert (
            routes_test(f"alertname={rule['alert']}", f"severity={severity}")
            == (RECEIVERS[severity])
        )


@pytest.mark.tools
def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check is real: a receiver name typo is refused."""
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(CONFIG.read_text().replace("receiver: warning-receiver", "receiver: warnin"))
    result = run_tool("amtool", "check-config", str(broken))
    assert result.returncode != 0


def test_route_timings_and_inhibition() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    route = config["route"]
    assert route["receiver"] == "default-receiver"
    watchdog, critical, warning, none = route["routes"]
    # The Watchdog first, re-sent every minute: a dead man's switch expects a steady beat.
    assert watchdog["matchers"] == [f'alertname="{WATCHDOG}"']
    assert (watchdog["receiver"], watchdog["repeat_interval"]) == ("watchdog", "1m")
    (heartbeat,) = [r for r in config["receivers"] if r["name"] == "watchdog"]
    assert [hook["url"] for hook in heartbeat["webhook_configs"]] == [WEBHOOK]
    assert critical["matchers"] == ['severity="critical"']
    assert critical["receiver"] == "critical-receiver"
    assert (critical["group_wait"], critical["repeat_interval"]) == ("10s", "1h")
    assert warning["matchers"] == ['severity="warning"']
    assert warning["receiver"] == "warning-receiver"
    assert (none["matchers"], none["receiver"]) == (['severity="none"'], "inhibit-only")
    (inhibit_only,) = [r for r in config["receivers"] if r["name"] == "inhibit-only"]
    assert inhibit_only == {"name": "inhibit-only"}  # no integration: delivered nowhere


def test_api_unavailable_holds_back_every_other_testboost_alert_but_the_page() -> None:
    """APIUnavailable over every other alert of alerts.yml but HealthCheckFailed and the SLO
    pages' inhibitor, then the SLO burn-rate alerts, named (never a whole severity: other
    systems' alerts may come here); and over the webhook failures its outage causes."""
    rule, webhook = inhibit_rules_from(UNAVAILABLE)
    others = [a.name for a in ALERTS if a.name not in (API_DOWN, UNAVAILABLE, SLO_ERRORS_TOO_FEW)]
    slos = list(dict.fromkeys(r["alert"] for r in slo_alert_rules()))
    assert rule == {
        "source_matchers": [f'alertname="{UNAVAILABLE}"'],
        "target_matchers": [f'alertname=~"{"|".join(others + slos)}"'],
    }
    assert {r["alert"] for r in alert_rules()} == {
        API_DOWN,
        UNAVAILABLE,
        SLO_ERRORS_TOO_FEW,
        *others,
    }
    assert webhook == {
        "source_matchers": [f'alertname="{UNAVAILABLE}"'],
        "target_matchers": [
            'alertname="AlertmanagerNotificationsFailing"',
            'integration="webhook"',
        ],
    }


def inhibit_rules_from(source: str) -> list[dict[str, Any]]:
    rules = yaml.safe_load(CONFIG.read_text())["inhibit_rules"]
    return [r for r in rules if r["source_matchers"] == [f'alertname="{source}"']]


def test_an_slo_page_waits_for_enough_bad_requests() -> None:
    """SLOErrorsTooFewToPage (alerts.yml) holds back the page of its own SLO only, never the
    ticket."""
    (rule,) = inhibit_rules_from(SLO_ERRORS_TOO_FEW)
    assert rule == {
        "source_matchers": [f'alertname="{SLO_ERRORS_TOO_FEW}"'],
        "target_matchers": ['sloth_severity="page"'],
        "equal": ["sloth_slo"],
    }


def alert_as_rule(alert: Any) -> dict[str, Any]:
    return {"alert": alert.name, "labels": {"severity": alert.severity}}


def test_a_down_collector_holds_back_the_stale_metrics_it_causes() -> None:
    """The second inhibit rule: OTelCollectorDown over APIMetricsStale (pipeline-alerts.yml),
    both the pipeline's own; the end-to-end test sees it hold on a real stack."""
    (rule,) = inhibit_rules_from("OTelCollectorDown")
    assert rule == {
        "source_matchers": ['alertname="OTelCollectorDown"'],
        "target_matchers": ['alertname="APIMetricsStale"'],
    }
    assert {"OTelCollectorDown", "APIMetricsStale"} <= {a.name for a in PIPELINE_ALERTS}


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """The committed alertmanager.yml on a real Alertmanager (its webhook is never reached:
    the test ends before the first group_wait)."""
    binary = tool_path("alertmanager")
    url = f"http://127.0.0.1:{free_port()}"
    with (tmp_path / "alertmanager.log").open("w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={CONFIG}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address={url.removeprefix('http://')}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        until(lambda: _ready(url), timeout=20, interval=0.1, message="Alertmanager ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _post(url: str, *alerts: dict[str, Any]) -> None:
    httpx.post(f"{url}/api/v2/alerts", json=list(alerts), timeout=5).raise_for_status()


def _states(url: str) -> dict[str, tuple[str, bool]]:
    """alertname -> (state, inhibited) of every active alert Alertmanager holds."""
    answer = httpx.get(f"{url}/api/v2/alerts", timeout=5)
    answer.raise_for_status()
    return {
        a["labels"]["alertname"]: (a["status"]["state"], bool(a["status"]["inhibitedBy"]))
        for a in answer.json()
    }


def _others() -> list[dict[str, Any]]:
    """Every other alert of the rules' source with the labels its rule gives it: some none
    but severity, the pool alert its own job/instance (a replica or push-mode worker), which
    no `equal` has to match."""
    extra = {
        "DBConnectionPoolExhausted": {"job": "testboost-api", "instance": "w1"},
        "SlowAPIResponse": {"path": "/api/v2/sessions"},
        "SlowWorkflowExecution": {"workflow_type": "generate_tests"},
    }
    return [
        {"labels": {"alertname": a.name, "severity": a.severity, **extra.get(a.name, {})}}
        for a in ALERTS
        if a.name not in (API_DOWN, UNAVAILABLE, SLO_ERRORS_TOO_FEW)
    ]


@pytest.mark.tools
def test_no_replica_up_holds_back_the_apis_other_alerts_but_pages(alertmanager: str) -> None:
    page = {"labels": {"alertname": API_DOWN, "severity": "critical", "job": "testboost-api"}}
    unavailable = {"labels": {"alertname": UNAVAILABLE, "severity": "none", "job": "testboost-api"}}
    others = _others()
    foreign = {"labels": {"alertname": "NodeDown", "severity": "critical"}}
    _post(alertmanager, page, unavailable, *others, foreign)

    states = _states(alertmanager)
    assert states.pop(API_DOWN) == ("active", False), "the page itself is never held back"
    assert states.pop(UNAVAILABLE) == ("active", False)
    assert states.pop("NodeDown") == ("active", False), "another system's alert is held back"
    assert states == {a["labels"]["alertname"]: ("suppressed", True) for a in others}

    now = datetime.now(UTC)
    ended = {"startsAt": (now - timedelta(minutes=5)).isoformat(), "endsAt": now.isoformat()}
    _post(alertmanager, {**unavailable, **ended})
    states = _states(alertmanager)
    assert UNAVAILABLE not in states
    assert states == {
        **{a["labels"]["alertname"]: ("active", False) for a in others},
        API_DOWN: ("active", False),
        "NodeDown": ("active", False),
    }


@pytest.mark.tools
def test_a_quiet_hour_holds_back_its_slos_page_only(alertmanager: str) -> None:
    """Too few bad requests for api-availability: its page is held back, its ticket and the
    other SLO's page are not (equal: sloth_slo)."""

    def burn(slo: str, severity: str) -> dict[str, Any]:
        name = {
            "api-availability": "APIAvailabilityBudgetBurn",
            "api-latency": "APILatencyBudgetBurn",
        }
        level = {"page": "critical", "ticket": "warning"}[severity]
        labels = {"alertname": name[slo], "sloth_slo": slo, "sloth_severity": severity}
        return {"labels": {**labels, "severity": level}}

    few = {"labels": {"alertname": SLO_ERRORS_TOO_FEW, "severity": "none"}}
    few["labels"]["sloth_slo"] = "api-availability"
    _post(alertmanager, few, burn("api-availability", "page"))
    _post(alertmanager, burn("api-availability", "ticket"), burn("api-latency", "page"))
    answer = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    held = {
        (a["labels"]["alertname"], a["labels"].get("sloth_severity")): bool(
            a["status"]["inhibitedBy"]
        )
        for a in answer
    }
    assert held == {
        (SLO_ERRORS_TOO_FEW, None): False,
        ("APIAvailabilityBudgetBurn", "page"): True,
        ("APIAvailabilityBudgetBurn", "ticket"): False,
        ("APILatencyBudgetBurn", "page"): False,
    }


@pytest.mark.tools
def test_one_replica_down_among_several_holds_back_nothing(alertmanager: str) -> None:
    """HealthCheckFailed for one replica (the others answer, APIUnavailable does not fire):
    the aggregate alerts still describe the replicas that serve, and are notified."""
    down = {"labels": {"alertname": API_DOWN, "severity": "critical", "job": "testboost-api"}}
    down["labels"]["instance"] = "10.0.0.7:8000"
    others = _others()
    _post(alertmanager, down, *others)
    assert set(_states(alertmanager).values()) == {("active", False)}


@pytest.mark.tools
def test_without_health_check_failed_nothing_is_inhibited(alertmanager: str) -> None:
    """Critical and warning alerts of the same kind together: each is notified (the old rule,
    critical over warning of the same name, could never match: one severity per name)."""
    _post(
        alertmanager,
        {"labels": {"alertname": "HighHTTP5xxErrorRate", "severity": "critical"}},
        {"labels": {"alertname": "HighHTTP4xxErrorRate", "severity": "warning"}},
        {"labels": {"alertname": "TooManyActiveSessions", "severity": "warning"}},
    )
    assert set(_states(alertmanager).values()) == {("active", False)}


def test_every_receiver_posts_to_the_api_with_a_key_file() -> None:
    """Every receiver but inhibit-only (checked above: it notifies no one)."""
    config = yaml.safe_load(CONFIG.read_text())
    receivers = [r for r in config["receivers"] if r["name"] != "inhibit-only"]
    assert len(receivers) == 4
    for receiver in receivers:
        (hook,) = receiver["webhook_configs"]
        assert hook["url"] == WEBHOOK
        # A heartbeat never resolves; everything else says when it does.
        assert hook["send_resolved"] is (receiver["name"] != "watchdog")
        assert hook["http_config"] == {
            "authorization": {"type": "Bearer", "credentials_file": KEY_FILE}
        }


def test_no_secret_or_env_placeholder_in_the_file() -> None:
    """Alertmanager does not expand ${VAR}; 0.28 has no http_config.headers."""
    text = CONFIG.read_text()
    assert "${" not in text
    assert not re.search(r"^\s*headers:", text, re.M)
    assert not re.search(r"^\s*#?\s*(auth_password|api_url|routing_key|service_key):", text, re.M)


@pytest.mark.tools
def test_commented_templates_are_valid_when_uncommented(tmp_path: Path) -> None:
    """The email, Slack and PagerDuty templates, uncommented, pass amtool check-config."""
    lines = []
    for line in CONFIG.read_text().splitlines():
        match = re.match(r"^    # ?((?:email|slack|pagerduty)_configs:|  .*)$", line)
        lines.append("    " + match.group(1) if match else line)
    enabled = "\n".join(lines) + "\n"
    path = tmp_path / "alertmanager.yml"
    path.write_text(enabled)
    result = run_tool("amtool", "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    (critical,) = [
        r for r in yaml.safe_load(enabled)["receivers"] if r["name"] == "critical-receiver"
    ]
    assert critical["email_configs"][0]["auth_password_file"].startswith(
        "/etc/alertmanager/secrets/"
    )
    assert critical["slack_configs"][0]["api_url_file"].startswith("/etc/alertmanager/secrets/")
    assert critical["pagerduty_configs"][0]["routing_key_file"].startswith(
        "/etc/alertmanager/secrets/"
    )
