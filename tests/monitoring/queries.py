"""Every PromQL expression the monitoring configs run, for the contract and end-to-end tests.

`dashboard_queries()` walks the Grafana dashboards, `alert_rules()` and `recording_rules()` the
Prometheus rule file alerts.yml, `slo_alert_rules()` and `slo_recording_rules()` the rules
Sloth generates (slo-rules.yml); all read the committed files, so a test using them checks
what is actually deployed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

# The doctor reads the shipped dashboards the same way.
from doctor.shipped import all_panels, default_selection, expand

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
DASHBOARDS_DIR = MONITORING / "grafana" / "dashboards"
ALERTS_FILE = MONITORING / "prometheus" / "alerts.yml"
SLO_RULES_FILE = MONITORING / "prometheus" / "slo-rules.yml"
PIPELINE_ALERTS_FILE = MONITORING / "prometheus" / "pipeline-alerts.yml"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard.get("panels", [])) if p.get("type") != "row"]


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard title, panel title, expr) for every target of every dashboard, as Grafana
    runs it when the dashboard opens (job testboost-api, every instance)."""
    out: list[tuple[str, str, str]] = []
    for path in dashboard_files():
        dashboard = load_dashboard(path)
        selection = default_selection(dashboard)
        for panel in dashboard_panels(dashboard):
            for target in panel.get("targets", []):
                out.append((dashboard["title"], panel["title"], expand(target["expr"], selection)))
    return out


def rules_of(path: Path) -> list[dict[str, Any]]:
    """Every rule of a rule file, recording and alerting, in file order."""
    doc = yaml.safe_load(path.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def all_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml, recording and alerting, in file order."""
    return rules_of(ALERTS_FILE)


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml (`alert`, `expr`, `for`, `labels`, `annotations`)."""
    return [rule for rule in all_rules() if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    """Every recording rule of alerts.yml (`record`, `expr`), in evaluation order."""
    return [rule for rule in all_rules() if "record" in rule]


def slo_rules() -> list[dict[str, Any]]:
    """Every rule of slo-rules.yml (Sloth's), recording and alerting, in file order."""
    return rules_of(SLO_RULES_FILE)


def slo_alert_rules() -> list[dict[str, Any]]:
    """The SLOs' burn-rate alerts: a page and a ticket per SLO, each pair under one name."""
    return [rule for rule in slo_rules() if "alert" in rule]


def slo_recording_rules() -> list[dict[str, Any]]:
    """The SLOs' recording rules (`record`, `expr`, `labels`): one name, such as
    slo:sli_error:ratio_rate5m, per window or figure, told apart by their sloth_* labels."""
    return [rule for rule in slo_rules() if "record" in rule]


def pipeline_alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of pipeline-alerts.yml (the collector, Prometheus, Alertmanager and
    the Watchdog)."""
    return [rule for rule in rules_of(PIPELINE_ALERTS_FILE) if "alert" in rule]
