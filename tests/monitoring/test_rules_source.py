"""monitoring/prometheus/alerts.yml is generated from monitoring/prometheus/alert_rules.py (named
thresholds, runbook URL base, rules) by monitoring/prometheus/gen_alerts.py, and cannot drift
from it."""

from __future__ import annotations

import runpy

import alert_rules as source
import pytest
import yaml

from devstack.configs import alert_rules as stack_copy
from devstack.configs import pipeline_alert_rules as pipeline_copy
from doctor.checks import prometheus as prometheus_checks
from telemetry.catalog import GUIDE_ALERTS, HTTP_DURATION, WORKFLOW_DURATION

from .queries import ALERTS_FILE, PIPELINE_ALERTS_FILE
from .tools import REPO, check_generated

GENERATOR = REPO / "monitoring" / "prometheus" / "gen_alerts.py"


def generator() -> dict:
    return runpy.run_path(str(GENERATOR))


def test_committed_rules_are_what_the_source_generates() -> None:
    assert ALERTS_FILE.read_text() == generator()["render"](), (
        "monitoring/prometheus/alerts.yml is out of date: run `make rules`"
    )


def test_committed_pipeline_rules_are_what_the_source_generates() -> None:
    gen = generator()
    expected = gen["render"](source.PIPELINE_GROUPS, gen["PIPELINE_HEADER"])
    assert PIPELINE_ALERTS_FILE.read_text() == expected, (
        "monitoring/prometheus/pipeline-alerts.yml is out of date: run `make rules`"
    )
    assert yaml.safe_load(expected) == gen["document"](source.PIPELINE_GROUPS)


def test_the_helm_chart_reads_the_generated_file() -> None:
    """charts/testboost's PrometheusRule is made from alerts.yml itself, never a copy
    (tests/kubernetes checks the rendered groups, with promtool and these unit tests)."""
    link = REPO / "charts" / "testboost" / "files" / "alerts.yml"
    assert link.is_symlink()
    assert link.resolve() == ALERTS_FILE.resolve()


def test_the_commented_yaml_is_the_rules_as_data() -> None:
    """The hand-written YAML (comments, block scalars, quoting) reads back as the source."""
    gen = generator()
    assert yaml.safe_load(gen["render"]()) == gen["document"]()


def test_check_mode_runs_as_documented() -> None:
    out = check_generated(GENERATOR)
    assert "alerts.yml, pipeline-alerts.yml match monitoring/prometheus/alert_rules.py" in out


def test_the_doctor_checks_the_sources_guide_alerts() -> None:
    assert prometheus_checks.GUIDE_ALERTS is GUIDE_ALERTS
    assert len(GUIDE_ALERTS) == 7


def test_quantile_thresholds_are_bucket_boundaries() -> None:
    """histogram_quantile() is exact at a boundary: p95 > threshold means what it says."""
    assert source.WORKFLOW_P95_SECONDS in WORKFLOW_DURATION.buckets
    assert source.API_P95_SECONDS in HTTP_DURATION.buckets


def test_every_alert_has_its_own_runbook_anchor() -> None:
    urls = [alert.runbook_url for alert in source.ALERTS]
    assert len(set(urls)) == len(urls)
    assert all(url.startswith(f"{source.RUNBOOK_BASE_URL}#") for url in urls)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (source.percent(0.05), "5 %"),
        (source.percent(0.9), "90 %"),
        (source.percent(0.10), "10 %"),
        (source.percent(0.01), "1 %"),
        (source.duration(300), "5m"),
        (source.duration(300, human=True), "5 min"),
        (source.duration(5), "5s"),
        (source.duration(5, human=True), "5 s"),
        (source.duration(3600), "1h"),
        (source.duration(90), "90s"),
        (source.label("path"), "{{ $labels.path }}"),
    ],
)
def test_text_helpers(text: str, expected: str) -> None:
    assert text == expected


def test_the_local_stack_copy_keeps_the_rules_and_shortens_every_for() -> None:
    """devstack copies alerts.yml textually and, in fast mode, rewrites each `for:` line."""
    shipped_doc = yaml.safe_load(ALERTS_FILE.read_text())
    assert stack_copy(fast=False).endswith(ALERTS_FILE.read_text())
    fast = yaml.safe_load(stack_copy(fast=True))
    rules = [r for g in fast["groups"] for r in g["rules"]]
    assert [r.get("alert") or r["record"] for r in rules] == [
        r.get("alert") or r["record"] for g in shipped_doc["groups"] for r in g["rules"]
    ]
    assert {r["for"] for r in rules if "alert" in r} == {"1s"}
    assert all("for" not in r for r in rules if "record" in r)


def test_the_local_stack_copy_of_the_pipeline_rules_shortens_for_and_windows() -> None:
    """Fast mode: every `for` 1 s and every rate window (and offset) 15 s, so that a broken
    part fires and a fixed one resolves within seconds (tests/e2e/test_pipeline_alerts.py);
    nothing else."""
    assert pipeline_copy(fast=False).endswith(PIPELINE_ALERTS_FILE.read_text())
    shipped_rules = yaml.safe_load(PIPELINE_ALERTS_FILE.read_text())["groups"][0]["rules"]
    fast_rules = yaml.safe_load(pipeline_copy(fast=True))["groups"][0]["rules"]
    assert [r["alert"] for r in fast_rules] == [r["alert"] for r in shipped_rules]
    for shipped_rule, fast_rule in zip(shipped_rules, fast_rules, strict=True):
        assert fast_rule["for"] == "1s"
        shortened = shipped_rule["expr"].replace("[5m]", "[15s]").replace("offset 5m", "offset 15s")
        assert fast_rule["expr"] == shortened
        assert fast_rule["annotations"] == shipped_rule["annotations"]
