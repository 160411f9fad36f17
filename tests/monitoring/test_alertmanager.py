"""Alertmanager config, checked by amtool 0.28 (the version compose runs): validity, routing
by severity, inhibition, the webhook's authentication, and the commented receiver templates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .queries import alert_rules
from .tools import REPO, run_tool

CONFIG = REPO / "monitoring" / "alertmanager" / "alertmanager.yml"
WEBHOOK = "http://host.docker.internal:8000/api/v1/alerts/webhook"
KEY_FILE = "/etc/alertmanager/secrets/testboost-api-key"


def routes_test(*labels: str) -> str:
    result = run_tool("amtool", "config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


@pytest.mark.tools
def test_amtool_check_config() -> None:
    result = run_tool("amtool", "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 3 receivers" in result.stdout


@pytest.mark.tools
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("alertname=HighLLMErrorRate", "severity=critical"), "critical-receiver"),
        (("alertname=SlowAPIResponse", "severity=warning"), "warning-receiver"),
        (("alertname=Something", "severity=info"), "default-receiver"),
        (("alertname=NoSeverity",), "default-receiver"),
    ],
)
def test_routing_by_severity(labels: tuple[str, ...], receiver: str) -> None:
    assert routes_test(*labels) == receiver


@pytest.mark.tools
def test_every_alert_rule_reaches_its_severity_receiver() -> None:
    for rule in alert_rules():
        severity = rule["labels"]["severity"]
        assert routes_test(f"alertname={rule['alert']}", f"severity={severity}") == (
            f"{severity}-receiver"
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
    critical, warning = route["routes"]
    assert critical["matchers"] == ['severity="critical"']
    assert critical["receiver"] == "critical-receiver"
    assert (critical["group_wait"], critical["repeat_interval"]) == ("10s", "1h")
    assert warning["matchers"] == ['severity="warning"']
    assert warning["receiver"] == "warning-receiver"
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname"],
        }
    ]


def test_every_receiver_posts_to_the_api_with_a_key_file() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        (hook,) = receiver["webhook_configs"]
        assert hook["url"] == WEBHOOK
        assert hook["send_resolved"] is True
        assert hook["http_config"] == {
            "authorization": {"type": "Bearer", "credentials_file": KEY_FILE}
        }


def test_no_secret_or_env_placeholder_in_the_file() -> None:
    """Alertmanager does not expand ${VAR}; 0.25 rejects http_config.headers."""
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
