"""Prometheus config and rules, checked by promtool 2.53 (the version compose runs) and 3.5
(the current long-term release), and by structural checks of what the setup guide promises."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from alert_rules import RUNBOOK_BASE_URL, WATCHDOG

from app.api.routes import alerts, health, sessions
from telemetry.catalog import GUIDE_ALERTS, UNMATCHED_PATH

from .queries import (
    ALERTS_FILE,
    PIPELINE_ALERTS_FILE,
    alert_rules,
    all_rules,
    pipeline_alert_rules,
    recording_rules,
    slo_alert_rules,
)
from .tools import REPO, run_tool

PROM_DIR = REPO / "monitoring" / "prometheus"
CONFIG = PROM_DIR / "prometheus.yml"
UNIT_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
PROMTOOLS = pytest.mark.parametrize("promtool", ["promtool", "promtool3"])
# The alert table of docs/setup.md: the guide's seven (name, threshold, severity), then HTTP.
SETUP_TABLE = re.compile(r"^\| (\w+) \| [^|]+ \| (critical|warning|none) \|$", re.M)


@pytest.mark.tools
@PROMTOOLS
def test_promtool_check_config(promtool: str) -> None:
    result = run_tool(promtool, "check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = yaml.safe_load(CONFIG.read_text())["rule_files"]
    assert f"{len(rule_files)} rule files found" in result.stdout


@pytest.mark.tools
@PROMTOOLS
def test_promtool_check_rules(promtool: str) -> None:
    result = run_tool(promtool, "check", "rules", str(ALERTS_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(all_rules())} rules found" in result.stdout


@pytest.mark.tools
@PROMTOOLS
def test_promtool_check_pipeline_rules(promtool: str) -> None:
    result = run_tool(promtool, "check", "rules", str(PIPELINE_ALERTS_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(pipeline_alert_rules())} rules found" in result.stdout


@pytest.mark.parametrize("rule", pipeline_alert_rules(), ids=lambda r: r["alert"])
def test_pipeline_alert_shape(rule: dict) -> None:
    """As the TestBoost alerts, but a heartbeat or an `up` has no value worth printing."""
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_BASE_URL}#{rule['alert'].lower()}"
    assert rule["labels"]["severity"] in {"critical", "warning", "none"}


@pytest.mark.tools
@PROMTOOLS
def test_promtool_unit_tests(promtool: str) -> None:
    result = run_tool(promtool, "test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


@pytest.mark.tools
def test_promtool_unit_tests_fail_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests compare rendered annotations: a changed threshold text is caught."""
    shutil.copy(ALERTS_FILE, tmp_path / "alerts.yml")
    (tmp_path / "tests").mkdir()
    broken = (PROM_DIR / "tests" / "llm.yml").read_text().replace("10% of LLM", "11% of LLM")
    (tmp_path / "tests" / "llm.yml").write_text(broken)
    result = run_tool("promtool", "test", "rules", str(tmp_path / "tests" / "llm.yml"))
    assert result.returncode != 0
    assert "HighLLMErrorRate" in result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_and_one_that_does_not() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules() + slo_alert_rules() + pipeline_alert_rules()}
    assert names <= fires, f"no firing case: {sorted(names - fires)}"
    # The Watchdog always fires: its silence is the dead man's switch's business.
    assert names - {WATCHDOG} <= silent, f"no silent case: {sorted(names - silent)}"


def test_every_recording_rule_has_an_expression_test() -> None:
    tested = {
        check["expr"]
        for path in UNIT_TESTS
        for case in yaml.safe_load(path.read_text())["tests"]
        for check in case.get("promql_expr_test", [])
    }
    assert {rule["record"] for rule in recording_rules()} <= tested


def test_unit_tests_use_the_api_routes() -> None:
    """`path` values are route templates the API really has (its label is the template)."""
    routes = {route.path for module in (alerts, health, sessions) for route in module.router.routes}
    known = routes | {"/metrics", UNMATCHED_PATH}
    used = {path for test in UNIT_TESTS for path in re.findall(r'path="([^"]*)"', test.read_text())}
    assert used, "no path label in the unit tests"
    assert used <= known, sorted(used - known)


def test_firing_cases_check_every_annotation() -> None:
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                for alert in check.get("exp_alerts", []):
                    # Sloth adds a `title` to the SLO alerts (slo-rules.yml).
                    sloth = {"title"} if "sloth_severity" in alert["exp_labels"] else set()
                    assert set(alert["exp_annotations"]) == {
                        "summary",
                        "description",
                        "runbook_url",
                        *sloth,
                    }
                    assert "severity" in alert["exp_labels"]


def test_alerts_are_the_guide_ones_plus_http() -> None:
    """Names and severities as docs/setup.md lists them: the guide's seven first."""
    table = SETUP_TABLE.findall((REPO / "docs" / "setup.md").read_text())
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in alert_rules()}
    assert severities == dict(table)
    assert len(GUIDE_ALERTS) == 7
    assert set(GUIDE_ALERTS) == {name for name, _ in table[:7]}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_shape(rule: dict) -> None:
    assert re.fullmatch(r"\d+[smh]", rule["for"]), "every alert waits before firing"
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert "{{ $value | humanize" in annotations["description"]
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE_URL}#{rule['alert'].lower()}"


def test_config_agrees_with_the_other_files() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"][0] == "alerts.yml"
    assert "slo-rules.yml" in config["rule_files"]  # the SLOs' rules (docs/slo.md)
    assert "pipeline-alerts.yml" in config["rule_files"]  # the pipeline's own alerts
    assert all((PROM_DIR / name).is_file() for name in config["rule_files"])
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]  # compose service `alertmanager`
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["testboost-api"]
    assert api["metrics_path"] == "/metrics"
    assert api["static_configs"][0]["targets"] == ["testboost-api:8000"]
    # instance stays the target's address: one series per replica, never a constant.
    assert not any(r.get("target_label") == "instance" for r in api.get("relabel_configs", []))
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["localhost:9090"]


@pytest.mark.tools
def test_commented_metrics_token_block_is_valid(tmp_path: Path) -> None:
    """Uncommenting the token block gives a config promtool accepts (with the file present)."""
    token = tmp_path / "metrics-token"
    token.write_text("s3cret\n")
    text = CONFIG.read_text()
    block = re.search(
        r"    # authorization:\n    #   type: Bearer\n    #   credentials_file: (\S+)\n", text
    )
    assert block, "the commented authorization block is missing"
    enabled = text.replace(
        block.group(0),
        (f"    authorization:\n      type: Bearer\n      credentials_file: {token}\n"),
    )
    (tmp_path / "prometheus.yml").write_text(enabled)
    for name in yaml.safe_load(text)["rule_files"]:  # promtool checks each rule file too
        shutil.copy(PROM_DIR / name, tmp_path / name)
    result = run_tool("promtool", "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert block.group(1) == "/etc/prometheus/secrets/metrics-token"


HA_CONFIG = REPO / "monitoring" / "prometheus" / "prometheus-ha.yml"


@pytest.mark.tools
@pytest.mark.parametrize("promtool", ["promtool", "promtool3"])
def test_ha_config_is_valid(promtool: str) -> None:
    result = run_tool(promtool, "check", "config", str(HA_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_ha_config_is_the_single_one_with_discovery_and_replica_labels() -> None:
    """prometheus-ha.yml (docs/scaling.md) differs from prometheus.yml only where replicas need
    it: the API's replicas found by DNS, external labels, the Alertmanager pair, `replica`
    dropped from alerts so that the pair receives one alert from both Prometheus."""
    single = yaml.safe_load(CONFIG.read_text())
    ha = yaml.safe_load(HA_CONFIG.read_text())
    assert ha["rule_files"] == single["rule_files"]
    assert ha["scrape_config_files"] == single["scrape_config_files"]
    assert {k: v for k, v in ha["global"].items() if k != "external_labels"} == single["global"]
    assert ha["global"]["external_labels"] == {
        "cluster": "testboost",
        "replica": "${PROMETHEUS_REPLICA}",
    }
    assert ha["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]
    targets = ha["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093", "alertmanager-b:9093"]
    jobs = {job["job_name"]: job for job in ha["scrape_configs"]}
    single_jobs = {job["job_name"]: job for job in single["scrape_configs"]}
    assert set(jobs) == set(single_jobs)
    api = jobs["testboost-api"]
    assert api["dns_sd_configs"] == [
        {"names": ["testboost-api"], "type": "A", "port": 8000, "refresh_interval": "15s"}
    ]
    assert "relabel_configs" not in api  # instance: each replica's address
    assert api["metrics_path"] == single_jobs["testboost-api"]["metrics_path"]
    assert jobs["prometheus"] == single_jobs["prometheus"]
