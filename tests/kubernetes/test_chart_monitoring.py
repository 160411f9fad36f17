"""What the chart gives the Prometheus Operator and Grafana: the ServiceMonitor (its selector,
port and the `job`/`instance` labels it produces), the PrometheusRule (the very groups of
monitoring/prometheus/alerts.yml then slo-rules.yml, checked by promtool and their unit
tests), the dashboards and
the collector's configuration (the repository's files, through the symlinks in files/)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.queries import ALERTS_FILE, DASHBOARDS_DIR, SLO_RULES_FILE
from tests.monitoring.tools import run_tool

from .chart import CHART, PRODUCTION, PUSH, REPO, all_of, objects, one, rendered

pytestmark = pytest.mark.tools

JOB = "testboost-api"
UNIT_TESTS = sorted((REPO / "monitoring" / "prometheus" / "tests").glob("*.yml"))
# The rule files the PrometheusRule carries, as the unit tests name them; the unit tests of
# these files (and only these) run on the rendered groups.
CHART_RULE_FILES = {"../alerts.yml", "../slo-rules.yml"}
CHART_UNIT_TESTS = [
    path
    for path in UNIT_TESTS
    if set(yaml.safe_load(path.read_text())["rule_files"]) <= CHART_RULE_FILES
]
COLLECTOR_CONFIG = REPO / "otel-collector" / "config.yaml"
VALUES = {"defaults": (), "production": (str(PRODUCTION),)}


def scrape_labels(service_monitor: dict[str, Any], service: dict[str, Any]) -> dict[str, str]:
    """The `job` label the Prometheus Operator gives the ServiceMonitor's targets: the value of
    the Service's label named by jobLabel, else the Service's name; then the endpoint's
    relabelings, which may set `job` or `instance` themselves."""
    spec = service_monitor["spec"]
    labels = service["metadata"]["labels"]
    job = labels.get(spec["jobLabel"]) if "jobLabel" in spec else None
    result = {"job": job or service["metadata"]["name"], "instance": "<pod address>:<port>"}
    for relabeling in spec["endpoints"][0].get("relabelings", []):
        target = relabeling.get("targetLabel")
        if target in result and relabeling.get("action", "replace") == "replace":
            result[target] = relabeling.get("replacement", "$1")
    return result


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_service_monitor_selects_the_service_and_its_named_port(values: tuple[str, ...]) -> None:
    docs = objects(values)
    monitor, service = one(docs, "ServiceMonitor"), one(docs, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["testboost"]}
    port_names = {port["name"] for port in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in port_names
    assert endpoint["path"] == "/metrics"
    # The Service's port leads to the container port the API listens on.
    container_ports = {
        p["name"]
        for p in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    # The alerts' windows assume one sample per 15 s.
    assert endpoint["interval"] == "15s"


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_job_is_testboost_api_and_instance_stays_per_pod(values: tuple[str, ...]) -> None:
    docs = objects(values)
    labels = scrape_labels(one(docs, "ServiceMonitor"), one(docs, "Service"))
    assert labels == {"job": JOB, "instance": "<pod address>:<port>"}
    (endpoint,) = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert not endpoint.get("honorLabels"), "the API's /metrics must not choose job/instance"
    # What the alerts select is what the scrape produces.
    assert f'job="{JOB}"' in ALERTS_FILE.read_text()


def test_a_relabeling_of_instance_would_be_seen() -> None:
    """The simulation above is not vacuous: a relabeling that rewrites instance is caught."""
    docs = objects(
        (),
        (
            "serviceMonitor.relabelings[0].targetLabel=instance",
            "serviceMonitor.relabelings[0].replacement=testboost-api",
        ),
    )
    labels = scrape_labels(one(docs, "ServiceMonitor"), one(docs, "Service"))
    assert labels["instance"] == "testboost-api"


def rule_groups(values: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return one(objects(values), "PrometheusRule")["spec"]["groups"]


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_the_rules_are_alerts_yml_then_slo_rules_yml_unchanged(values: tuple[str, ...]) -> None:
    alerts = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    slo = yaml.safe_load(SLO_RULES_FILE.read_text())["groups"]
    assert rule_groups(values) == alerts + slo
    assert sum(len(group["rules"]) for group in alerts) >= 10
    assert any(rule.get("record") == "slo:error_budget:ratio" for g in slo for rule in g["rules"])


def extracted_rules(directory: Path) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file, as the operator writes them."""
    path = directory / "prometheusrule-groups.yml"
    path.write_text(yaml.safe_dump({"groups": rule_groups()}, sort_keys=False))
    return path


@pytest.mark.parametrize("promtool", ["promtool", "promtool3"])
def test_promtool_checks_the_extracted_rules(promtool: str, tmp_path: Path) -> None:
    rules = extracted_rules(tmp_path)
    result = run_tool(promtool, "check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(group["rules"]) for group in rule_groups())
    assert f"{count} rules found" in result.stdout


@pytest.mark.parametrize("promtool", ["promtool", "promtool3"])
def test_alerts_yml_unit_tests_pass_on_the_extracted_rules(promtool: str, tmp_path: Path) -> None:
    rules = extracted_rules(tmp_path)
    copies = []
    for source in CHART_UNIT_TESTS:
        test = yaml.safe_load(source.read_text())
        test["rule_files"] = [str(rules)]
        copy = tmp_path / source.name
        copy.write_text(yaml.safe_dump(test, sort_keys=False))
        copies.append(str(copy))
    result = run_tool(promtool, "test", "rules", *copies)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {path.name for path in CHART_UNIT_TESTS}
    assert {"api.yml", "database.yml", "llm.yml", "workflows.yml", "slo.yml"} <= names
    assert result.stdout.count("SUCCESS") == len(CHART_UNIT_TESTS)


def test_the_unit_tests_fail_on_changed_rules(tmp_path: Path) -> None:
    """Run against a wrong threshold, the same unit tests fail: they test the extracted file."""
    rules = extracted_rules(tmp_path)
    rules.write_text(rules.read_text().replace("> 0.05", "> 0.5"))
    test = yaml.safe_load((REPO / "monitoring" / "prometheus" / "tests" / "llm.yml").read_text())
    test["rule_files"] = [str(rules)]
    (tmp_path / "llm.yml").write_text(yaml.safe_dump(test))
    assert run_tool("promtool", "test", "rules", str(tmp_path / "llm.yml")).returncode != 0


def dashboards(values: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    maps = [
        m
        for m in all_of(objects(values), "ConfigMap")
        if "otel-collector" not in m["metadata"]["name"]
    ]
    found = {}
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((name, text),) = config_map["data"].items()
        found[name] = json.loads(text)
    return found


def with_datasource(node: Any, uid: str) -> Any:
    """The dashboard with every reference to the testboost-prometheus datasource renamed."""
    if isinstance(node, dict):
        return {k: with_datasource(v, uid) for k, v in node.items()}
    if isinstance(node, list):
        return [with_datasource(v, uid) for v in node]
    return uid if node == "testboost-prometheus" else node


def test_the_dashboards_are_the_repositorys() -> None:
    sources = {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}
    assert len(sources) >= 3
    assert dashboards() == sources
    # kube-prometheus-stack's Grafana: its datasource uid, nothing else changed.
    production = dashboards((str(PRODUCTION),))
    assert production == {name: with_datasource(d, "prometheus") for name, d in sources.items()}
    assert "testboost-prometheus" not in json.dumps(production)


def test_the_collector_configuration_only_in_push_mode() -> None:
    names = [m["metadata"]["name"] for m in all_of(objects(), "ConfigMap")]
    assert not [n for n in names if "otel-collector" in n]
    (config_map,) = [
        m
        for m in all_of(objects((), PUSH), "ConfigMap")
        if "otel-collector" in m["metadata"]["name"]
    ]
    assert config_map["data"]["config.yaml"] == COLLECTOR_CONFIG.read_text().rstrip("\n")
    off = objects((), (*PUSH, "telemetry.collectorConfigMap=false"))
    assert len(all_of(off, "ConfigMap")) == len(all_of(objects(), "ConfigMap"))


def test_the_chart_reads_the_repositorys_files_through_symlinks() -> None:
    """Never copies: each file under files/ is a link to its source (relative, inside the
    repository), so a change to the alerts, dashboards or collector config is the chart's."""
    links = {
        "alerts.yml": ALERTS_FILE,
        "slo-rules.yml": SLO_RULES_FILE,
        "dashboards": DASHBOARDS_DIR,
        "otel-collector.yaml": COLLECTOR_CONFIG,
    }
    files = CHART / "files"
    assert sorted(p.name for p in files.iterdir()) == sorted(links)
    for name, source in links.items():
        link = files / name
        assert link.is_symlink(), f"{link} must be a symlink to {source}"
        assert not os.path.isabs(os.readlink(link))
        assert link.resolve() == source.resolve()


def test_rule_annotations_keep_their_templates() -> None:
    """Prometheus expands {{ $value }} and {{ $labels.x }}; Helm must have left them alone."""
    text = rendered()
    assert "{{ $value" in text
    assert "{{ $labels." in text
