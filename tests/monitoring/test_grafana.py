"""Grafana provisioning and dashboards: the guide's panels in order, the datasource uid on
every panel and target, a sane schema, and every query answering with a number when run by
Prometheus' own engine (promtool) over a workload shaped like telemetry/catalog.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from telemetry.catalog import CATALOG, Kind

from .queries import (
    DASHBOARDS_DIR,
    SLO_RULES_FILE,
    alert_rules,
    dashboard_files,
    dashboard_panels,
    dashboard_queries,
    load_dashboard,
)
from .tools import REPO, run_tool

GRAFANA = REPO / "monitoring" / "grafana"
DATASOURCE = {"type": "prometheus", "uid": "testboost-prometheus"}
# The setup guide's panel titles, verbatim and in order (monitoring-setup-guide.md, "Dashboards
# Préconfigurés"); a panel may add a qualifier in parentheses after it.
GUIDE_PANEL_TITLES = [
    "Active Sessions",
    "LLM Error Rate",
    "LLM Calls (24h)",
    "Workflow Duration (p95)",
    "LLM Calls by Provider",
    "Workflow Duration by Type",
    "Database Connection Pool",
    "API Response Time",
]


def test_datasource_provisioning() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = doc["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == DATASOURCE["uid"]
    assert source["url"] == "http://prometheus:9090"  # compose service `prometheus`
    prometheus = yaml.safe_load((REPO / "monitoring/prometheus/prometheus.yml").read_text())
    assert source["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]


def test_exemplars_link_to_the_provisioned_jaeger() -> None:
    """An exemplar's trace_id (the label the API's /metrics and the collector's page give it)
    opens its trace in a Jaeger datasource provisioned beside Prometheus', at the compose
    service's query port."""
    datasources = GRAFANA / "provisioning" / "datasources"
    (jaeger,) = yaml.safe_load((datasources / "jaeger.yml").read_text())["datasources"]
    assert (jaeger["type"], jaeger["uid"]) == ("jaeger", "testboost-jaeger")
    otel = yaml.safe_load((REPO / "compose/docker-compose.otel.yaml").read_text())["services"]
    published = {entry.split(":")[-1] for entry in otel["jaeger"]["ports"]}
    assert jaeger["url"] == "http://jaeger:16686" and "16686" in published
    for path in (datasources / "prometheus.yml", REPO / "monitoring/thanos/grafana-datasource.yml"):
        (source,) = yaml.safe_load(path.read_text())["datasources"]
        assert source["jsonData"]["exemplarTraceIdDestinations"] == [
            {
                "name": "trace_id",
                "datasourceUid": jaeger["uid"],
                "urlDisplayLabel": "Trace in Jaeger",
            }
        ], path


# Latency panels whose buckets carry exemplars: one target each asks for them (every target of
# a panel reads the same buckets, and Grafana would draw each exemplar once per target).
EXEMPLAR_PANELS = {
    "testboost-overview.json": "API Response Time (p50, p95, p99)",
    "http-errors.json": "Latency Percentiles by Route (p50, p95, p99)",
    "llm-workflows.json": "LLM Latency by Provider (p50, p95)",
}


def test_latency_panels_show_exemplars_once() -> None:
    for path in dashboard_files():
        for panel in dashboard_panels(load_dashboard(path)):
            asking = [t for t in panel.get("targets", []) if t.get("exemplar")]
            if panel["title"] == EXEMPLAR_PANELS.get(path.name):
                assert len(asking) == 1, (path.name, panel["title"])
                assert "_duration_seconds_bucket" in asking[0]["expr"]
            else:
                assert not asking, (path.name, panel["title"])


def test_dashboard_provider() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "testboost.yml").read_text())
    (provider,) = doc["providers"]
    assert provider["folder"] == "TestBoost"
    assert provider["type"] == "file"
    assert provider["updateIntervalSeconds"] == 30
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_overview_has_the_guide_panels_in_order() -> None:
    overview = load_dashboard(DASHBOARDS_DIR / "testboost-overview.json")
    assert overview["title"] == "TestBoost Overview"
    titles = [p["title"] for p in dashboard_panels(overview)][: len(GUIDE_PANEL_TITLES)]
    for title, guide in zip(titles, GUIDE_PANEL_TITLES, strict=True):
        assert title == guide or re.fullmatch(rf"{re.escape(guide)} \([^()]+\)", title), title
    assert titles[-1] == "API Response Time (p50, p95, p99)"
    error_rate = dashboard_panels(overview)[1]
    assert error_rate["fieldConfig"]["defaults"]["unit"] == "percentunit"
    steps = error_rate["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert 0.05 in [s["value"] for s in steps]
    assert error_rate["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"


def test_overview_ends_with_a_runtime_row_of_the_process_families() -> None:
    """After the guide's panels, a "Runtime" row reads every runtime family of the API's job
    (Prometheus exposes process_* of its own: the job selector keeps them out)."""
    overview = load_dashboard(DASHBOARDS_DIR / "testboost-overview.json")
    rows = [p for p in overview["panels"] if p.get("type") == "row"]
    assert [r["title"] for r in rows] == ["Service Level Objectives", "Runtime"]
    after = [p for p in overview["panels"] if p["gridPos"]["y"] > rows[-1]["gridPos"]["y"]]
    exprs = [t["expr"] for p in after for t in p["targets"]]
    runtime = [f.name for f in CATALOG if f.observed]
    for name in runtime:
        assert any(name in expr for expr in exprs), name
    assert all('job="$job"' in expr for expr in exprs), exprs  # the API's, never Prometheus'


def test_overview_has_an_slo_row_with_the_error_budget_left() -> None:
    """Between the guide's panels and Runtime: each SLO's error budget left over 30 days and
    its burn rate, read from the rules Sloth generates (slo-rules.yml), every SLO at once
    (sloth_service), and a number even before any traffic (the `or` on slo:objective:ratio,
    which exists as soon as the rules are loaded)."""
    overview = load_dashboard(DASHBOARDS_DIR / "testboost-overview.json")
    panels = overview["panels"]
    (row,) = [p for p in panels if p.get("title") == "Service Level Objectives"]
    below = [p for p in panels if p["gridPos"]["y"] == row["gridPos"]["y"] + 1]
    assert [p["title"] for p in below] == [
        "Error Budget Left (30 days)",
        "Error Budget Burn Rate (5m)",
    ]
    budget, burn = ([t["expr"] for t in p["targets"]] for p in below)
    # One series per SLO whichever side of the `or` answers (the same in every topology).
    assert budget[0].startswith(
        'max by (sloth_slo) (\n  slo:period_error_budget_remaining:ratio{sloth_service="testboost"}'
    )
    assert burn[0].startswith(
        'max by (sloth_slo) (\n  slo:current_burn_rate:ratio{sloth_service="testboost"}'
    )
    assert all("or" in expr and "slo:objective:ratio" in expr for expr in budget + burn)
    assert below[0]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert all(t["legendFormat"] == "{{sloth_slo}}" for p in below for t in p["targets"])


SELECTOR = re.compile(r"\b((?:testboost|process|python)_\w+)(\{[^}]*\})?")


def test_every_dashboard_picks_a_job_and_instances_and_every_series_obeys() -> None:
    """With 1 or N replicas (or worker processes in push mode): a job variable (the API's by
    default) and an instance variable (all by default, summed); every metric selector of every
    panel carries both, so picking one replica narrows every panel to it."""
    for path in dashboard_files():
        dashboard = load_dashboard(path)
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert set(variables) == {"job", "instance"}, path.name
        job, instance = variables["job"], variables["instance"]
        assert job["current"]["value"] == "testboost-api" and not job["includeAll"]
        assert instance["multi"] and instance["includeAll"] and instance["allValue"] == ".+"
        assert instance["current"]["value"] == ["$__all"]
        assert '{job="$job"}' in instance["query"]["query"]
        for panel in dashboard_panels(dashboard):
            for target in panel["targets"]:
                for match in SELECTOR.finditer(target["expr"]):
                    matchers = match.group(2) or ""
                    assert matchers.startswith('{job="$job", instance=~"$instance"'), (
                        f"{path.name} / {panel['title']}: {match.group(0)}"
                    )


def test_pool_panel_is_the_utilisation_with_the_alerts_90_percent_line() -> None:
    """Panel 7 is the guide's pool *utilisation*: checked out / capacity, in percent, the way
    DBConnectionPoolExhausted divides them (series by series, max > 0), with its 90 % line."""
    overview = load_dashboard(DASHBOARDS_DIR / "testboost-overview.json")
    pool = dashboard_panels(overview)[6]
    assert pool["title"] == "Database Connection Pool"
    (target,) = pool["targets"]
    expr = " ".join(SELECTOR.sub(r"\1", target["expr"]).split())  # the pickers aside
    assert expr == (
        "100 * max( testboost_db_connection_pool_size / (testboost_db_connection_pool_max > 0) )"
    )
    alert = next(r for r in alert_rules() if r["alert"] == "DBConnectionPoolExhausted")
    ratio = "testboost_db_connection_pool_size / (testboost_db_connection_pool_max > 0)"
    assert ratio in " ".join(alert["expr"].split())
    assert " ".join(alert["expr"].split()).endswith(">= 0.9")
    defaults = pool["fieldConfig"]["defaults"]
    assert (defaults["unit"], defaults["min"], defaults["max"]) == ("percent", 0, 100)
    steps = defaults["thresholds"]["steps"]
    assert defaults["thresholds"]["mode"] == "absolute"
    assert [s["value"] for s in steps] == [None, 90]
    assert defaults["custom"]["thresholdsStyle"]["mode"] in ("line", "line+area")


def test_http_errors_dashboard_covers_the_http_alerts() -> None:
    dashboard = load_dashboard(DASHBOARDS_DIR / "http-errors.json")
    exprs = " ".join(e for d, _, e in dashboard_queries() if d == dashboard["title"])
    for fragment in (
        'status=~"5.."',
        'status!="404"',
        'status="422"',
        'status=~"401|403"',
        "sum by (status)",
        "topk(",
        "histogram_quantile(0.99",
    ):
        assert fragment in exprs


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboard_schema(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["schemaVersion"] >= 36
    panels = dashboard_panels(dashboard)
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["fieldConfig"]["defaults"]["unit"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs)
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert "$__" not in target["expr"], "fixed windows only: testable outside Grafana"


def test_dashboard_uids_are_unique() -> None:
    uids = [load_dashboard(p)["uid"] for p in dashboard_files()]
    assert len(set(uids)) == len(uids)


def _workload_series() -> list[dict[str, str]]:
    """Two label sets per family, counters and histograms growing every minute for 2h."""
    values = {
        "provider": "simulated",
        "model": "sim-1",
        "error_type": "timeout",
        "workflow_type": "generate_tests",
        "status": "200",
        "method": "GET",
        "path": "/api/v2/sessions",
        "generation": "0",
    }
    series: list[dict[str, str]] = []
    for family in CATALOG:
        for instance in ("w1", "w2"):
            labels = {name: values[name] for name in family.labels}
            if family.name == "testboost_workflow_total":
                labels["status"] = "completed"
            labels |= {"job": "testboost-api", "instance": instance}
            if family.kind is Kind.COUNTER:
                series.append(_series(family.name, labels, "0+10x120"))
            elif family.kind is Kind.GAUGE:
                level = "20x120" if family.name.endswith("_max") else "5x120"
                series.append(_series(family.name, labels, level))
            else:
                middle = family.buckets[len(family.buckets) // 2]
                for bound in (*family.buckets, "+Inf"):
                    grows = bound == "+Inf" or bound >= middle
                    series.append(
                        _series(
                            f"{family.name}_bucket",
                            labels | {"le": str(bound)},
                            "0+10x120" if grows else "0x120",
                        )
                    )
                series.append(_series(f"{family.name}_count", labels, "0+10x120"))
                series.append(_series(f"{family.name}_sum", labels, f"0+{10 * middle}x120"))
    return series


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def _promtool_on_workload(
    checks: list[dict[str, Any]], tmp_path: Path, slo_rules: bool = True
) -> tuple[bool, str]:
    """promtool's promql_expr_test `checks` (expr, exp_samples) at the end of the 2h workload."""
    tests = {
        # The SLO panels read the recording rules Sloth generates.
        "rule_files": [str(SLO_RULES_FILE)] if slo_rules else [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _workload_series(),
                "promql_expr_test": [{**check, "eval_time": "120m"} for check in checks],
            }
        ],
    }
    path = tmp_path / "dashboards_test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run_tool("promtool", "test", "rules", str(path))
    return result.returncode == 0, result.stdout + result.stderr


def _promtool_returns_numbers(
    exprs: list[str], tmp_path: Path, slo_rules: bool = True
) -> tuple[bool, str]:
    checks = [
        {"expr": f"count(({expr}) >= 0) > bool 0", "exp_samples": [{"labels": "{}", "value": 1}]}
        for expr in exprs
    ]
    return _promtool_on_workload(checks, tmp_path, slo_rules)


@pytest.mark.tools
def test_every_panel_query_returns_a_number_on_a_realistic_workload(tmp_path: Path) -> None:
    """No panel is empty by design: each query, run by promtool's PromQL engine at the end of
    a 2h workload without any error, returns at least one sample that is a number (NaN fails
    `>= 0`). Error panels must say 0 rather than nothing."""
    ok, output = _promtool_returns_numbers([e for _, _, e in dashboard_queries()], tmp_path)
    assert ok, output


@pytest.mark.tools
def test_the_workload_check_catches_an_empty_panel(tmp_path: Path) -> None:
    empty = 'sum(rate(testboost_http_requests_total{status=~"5.."}[5m]))'
    ok, output = _promtool_returns_numbers([empty], tmp_path)
    assert not ok
    assert "exp" in output


@pytest.mark.tools
def test_the_slo_panels_show_one_series_per_slo(tmp_path: Path) -> None:
    """The fallback replaces a missing figure and never adds a second tile beside a real one:
    its `or` must match the recorded series whatever labels (sloth_window) they add."""
    overview = load_dashboard(DASHBOARDS_DIR / "testboost-overview.json")
    panels = [p for p in dashboard_panels(overview) if "slo:" in json.dumps(p.get("targets"))]
    assert len(panels) >= 2
    slos = ("api-availability", "api-latency", "workflow-success")
    checks = [
        {
            "expr": f"count by (sloth_slo) ({target['expr']})",
            "exp_samples": [{"labels": f'{{sloth_slo="{slo}"}}', "value": 1} for slo in slos],
        }
        for panel in panels
        for target in panel["targets"]
    ]
    ok, output = _promtool_on_workload(checks, tmp_path)
    assert ok, output


@pytest.mark.tools
def test_the_slo_panels_are_empty_without_the_slo_rules(tmp_path: Path) -> None:
    """Their fallback (`or` on slo:objective:ratio) stands for "no traffic yet", never for
    "rules not loaded": without slo-rules.yml they show nothing, and the doctor says so."""
    overview = load_dashboard(DASHBOARDS_DIR / "testboost-overview.json")
    (budget,) = [
        p for p in dashboard_panels(overview) if p["title"].startswith("Error Budget Left")
    ]
    ok, output = _promtool_returns_numbers([budget["targets"][0]["expr"]], tmp_path, False)
    assert not ok
    assert "exp" in output
