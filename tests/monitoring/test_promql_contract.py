"""Static contract check: every PromQL expression in alerts.yml, in the SLO rules Sloth generates
(slo-rules.yml) and in every dashboard is parsed with a real PromQL parser (promql_parser), and
everything it names must exist in telemetry.catalog — metric families, their labels, `le` on
`_bucket` series only — or be a Prometheus built-in, or a recording rule of alerts.yml or
slo-rules.yml (whose series carry exactly the labels its expression keeps, plus the rule's own
`labels:`, such as Sloth's sloth_id, sloth_slo, sloth_window). rate()/increase() may only read
counters and histogram series, and histogram_quantile() must keep `le`. A renamed metric or
label fails here, not on a dashboard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import promql_parser as pp
import pytest
from alert_rules import API_REQUESTS_RATE

from telemetry.catalog import BY_NAME, CATALOG, Kind, MetricFamily, family_for_series

from .queries import (
    alert_rules,
    dashboard_queries,
    recording_rules,
    slo_alert_rules,
    slo_recording_rules,
)

# Series Prometheus makes itself for every scrape target.
BUILTIN_SERIES = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    }
)
# Target labels every series gets (scrape: job/instance; push: the collector maps
# service.name/service.instance.id onto them).
TARGET_LABELS = frozenset({"job", "instance"})
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase", "resets"})
# Prometheus' recording rule naming: level:metric:operations.
RECORDING_NAME = re.compile(r"(?P<level>[a-z_]*):(?P<metric>[a-z][a-z0-9_]*):(?P<ops>[a-z0-9_]+)")


@dataclass
class Scope:
    """What a sub-expression reads: its series names and the labels they may carry."""

    series: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)


def allowed_labels(series_name: str) -> set[str]:
    family = family_for_series(series_name)
    labels = set(TARGET_LABELS)
    if family is not None:
        labels |= set(family.labels)
        if series_name == f"{family.name}_bucket":
            labels.add("le")
    return labels


def check(expr: pp.Expr, errors: list[str]) -> Scope:
    """Walk `expr`, append every contract violation to `errors`, return what it reads."""
    if isinstance(expr, pp.MatrixSelector):
        return check(expr.vector_selector, errors)
    if isinstance(expr, pp.VectorSelector):
        name = expr.name
        if name is None:
            errors.append(f"selector without a metric name: {expr}")
            return Scope()
        if name in RECORDED:
            recorded = RECORDED[name]
            for matcher in expr.matchers.matchers:
                if matcher.name != "__name__" and matcher.name not in recorded.labels:
                    errors.append(
                        f"{name}: label {matcher.name!r} not in {sorted(recorded.labels)}"
                    )
            return Scope(set(recorded.series), set(recorded.labels))
        if family_for_series(name) is None and name not in BUILTIN_SERIES:
            errors.append(f"unknown metric {name!r} (not in telemetry.catalog)")
            return Scope({name})
        labels = allowed_labels(name)
        for matcher in expr.matchers.matchers:
            if matcher.name != "__name__" and matcher.name not in labels:
                errors.append(f"{name}: label {matcher.name!r} not in {sorted(labels)}")
        return Scope({name}, labels)
    if isinstance(expr, pp.AggregateExpr):
        scope = check(expr.expr, errors)
        if expr.param is not None and isinstance(expr.param, pp.Expr):
            check(expr.param, errors)
        if expr.modifier is not None:
            for label in expr.modifier.labels:
                if label not in scope.labels:
                    errors.append(
                        f"{expr.op} by/without {label!r}: not a label of {sorted(scope.series)}"
                    )
            if expr.modifier.type == pp.AggModifierType.By:
                scope = Scope(scope.series, set(expr.modifier.labels))
            else:
                scope = Scope(scope.series, scope.labels - set(expr.modifier.labels))
        else:
            scope = Scope(scope.series, set())
        return scope
    if isinstance(expr, pp.BinaryExpr):
        lhs, rhs = check(expr.lhs, errors), check(expr.rhs, errors)
        both = Scope(lhs.series | rhs.series, lhs.labels | rhs.labels)
        modifier = expr.modifier
        if modifier is not None:
            names = list(modifier.matching.labels) if modifier.matching else []
            names += list(modifier.group_labels or [])
            for label in names:
                if label not in both.labels:
                    errors.append(
                        f"on/ignoring/group {label!r}: not a label of {sorted(both.series)}"
                    )
        return both
    if isinstance(expr, pp.Call):
        scopes = [check(arg, errors) for arg in expr.args if isinstance(arg, pp.Expr)]
        name = expr.func.name
        if name in COUNTER_FUNCTIONS:
            for series in scopes[0].series if scopes else ():
                family = family_for_series(series)
                if family is not None and family.kind is Kind.GAUGE:
                    errors.append(f"{name}() over gauge {series!r}")
        if name == "histogram_quantile":
            inner = scopes[1]
            if not inner.series or not all(s.endswith("_bucket") for s in inner.series):
                errors.append(f"histogram_quantile over non-bucket series {sorted(inner.series)}")
            if "le" not in inner.labels:
                errors.append("histogram_quantile: the aggregation drops `le`")
            return Scope(inner.series, inner.labels - {"le"})
        merged = Scope()
        for scope in scopes:
            merged.series |= scope.series
            merged.labels |= scope.labels
        return merged
    if isinstance(expr, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
        return check(expr.expr, errors)
    return Scope()  # number and string literals


def violations(promql: str) -> list[str]:
    errors: list[str] = []
    check(pp.parse(promql), errors)
    return errors


# What each recording rule's series read and carry, in evaluation order (a rule may read one
# recorded before it); their expressions are checked by a test below. Sloth records one name
# per SLO (slo:sli_error:ratio_rate5m for each, told apart by sloth_* labels): their union.
RECORDED: dict[str, Scope] = {}
for _rule in recording_rules() + slo_recording_rules():
    _scope = check(pp.parse(_rule["expr"]), [])
    _scope.labels |= set(_rule.get("labels", {}))
    _known = RECORDED.setdefault(_rule["record"], Scope())
    _known.series |= _scope.series
    _known.labels |= _scope.labels

ALERTS = alert_rules()
RECORDINGS = recording_rules()
SLO_ALERTS = slo_alert_rules()
SLO_RECORDINGS = slo_recording_rules()
PANELS = dashboard_queries()


def _slo_id(rule: dict) -> str:
    labels = rule["labels"]
    return "/".join(
        x
        for x in (
            rule.get("record") or rule["alert"],
            labels.get("sloth_slo", ""),
            labels.get("sloth_window") or labels.get("sloth_severity", ""),
        )
        if x
    )


@pytest.mark.parametrize("rule", RECORDINGS, ids=[r["record"] for r in RECORDINGS])
def test_recording_expression_matches_the_catalog(rule: dict) -> None:
    assert violations(rule["expr"]) == []


@pytest.mark.parametrize("rule", RECORDINGS, ids=[r["record"] for r in RECORDINGS])
def test_recording_rule_is_named_level_metric_operations(rule: dict) -> None:
    """level = the labels the series keep, metric = the catalog family it reads (`_total`
    stripped after rate()), operations = what was applied, window included."""
    name = RECORDING_NAME.fullmatch(rule["record"])
    assert name, f"{rule['record']}: not level:metric:operations"
    assert name["level"] == "_".join(sorted(RECORDED[rule["record"]].labels))
    family = BY_NAME.get(name["metric"]) or BY_NAME.get(f"{name['metric']}_total")
    assert family is not None, f"{name['metric']}: not a catalog family"
    assert set(family.series_names) & RECORDED[rule["record"]].series
    assert re.search(r"\d+[smh]", name["ops"]), "the window belongs in the operations"


@pytest.mark.parametrize("rule", ALERTS, ids=[r["alert"] for r in ALERTS])
def test_alert_expression_matches_the_catalog(rule: dict) -> None:
    assert violations(rule["expr"]) == []


@pytest.mark.parametrize(
    "rule", SLO_RECORDINGS + SLO_ALERTS, ids=map(_slo_id, SLO_RECORDINGS + SLO_ALERTS)
)
def test_slo_rule_expression_matches_the_catalog(rule: dict) -> None:
    """Sloth's rules read the catalog's families (the SLIs of monitoring/slo/testboost.yml)
    and the series Sloth records before them, nothing else."""
    assert violations(rule["expr"]) == []


def test_the_slis_read_the_catalog_families_they_are_about() -> None:
    read = {
        rule["labels"]["sloth_slo"]: check(pp.parse(rule["expr"]), []).series
        for rule in SLO_RECORDINGS
        if rule["record"] == "slo:sli_error:ratio_rate5m"
    }
    assert read == {
        "api-availability": {"testboost_http_requests_total"},
        "api-latency": {
            "testboost_http_request_duration_seconds_count",
            "testboost_http_request_duration_seconds_bucket",
        },
        "workflow-success": {"testboost_workflow_total"},
    }


@pytest.mark.parametrize(
    "query", PANELS, ids=[f"{d}/{p}/{i}" for i, (d, p, _) in enumerate(PANELS)]
)
def test_dashboard_query_matches_the_catalog(query: tuple[str, str, str]) -> None:
    assert violations(query[2]) == []


def test_every_catalog_family_is_watched_somewhere() -> None:
    """A family that no alert and no panel reads is a metric nobody can see."""
    exprs = [r["expr"] for r in ALERTS + RECORDINGS] + [q[2] for q in PANELS]
    read: set[str] = set()
    for promql in exprs:
        read |= check(pp.parse(promql), []).series
    unseen = [f.name for f in CATALOG if not set(f.series_names) & read]
    assert unseen == []


@pytest.mark.parametrize(
    ("promql", "expected"),
    [
        ("sum(rate(testboost_llm_calls_total[5m]))", []),
        ("testboost_llm_call_total", ["unknown metric 'testboost_llm_call_total'"]),
        ('testboost_llm_calls_total{providr="x"}', ["label 'providr'"]),
        ("sum by (le) (rate(testboost_llm_calls_total[5m]))", ["by/without 'le'"]),
        ("sum by (path) (rate(testboost_llm_calls_total[5m]))", ["by/without 'path'"]),
        ("rate(testboost_active_sessions[5m])", ["rate() over gauge"]),
        (
            "histogram_quantile(0.95,"
            " sum(rate(testboost_http_request_duration_seconds_bucket[5m])))",
            ["drops `le`"],
        ),
        ('up{job="testboost-api"} == 0', []),
        ("a / on (provider) testboost_llm_calls_total", ["unknown metric 'a'"]),
        (f'sum({API_REQUESTS_RATE}{{status=~"5.."}})', []),
        (f'{API_REQUESTS_RATE}{{path="/x"}}', ["label 'path'"]),
        (f"sum by (path) ({API_REQUESTS_RATE})", ["by/without 'path'"]),
        ("path:testboost_http_requests:rate5m", ["unknown metric"]),
        ('1 - slo:sli_error:ratio_rate30d{sloth_slo="api-latency"}', []),
        ("max by (sloth_slo) (slo:period_error_budget_remaining:ratio)", []),
        ('slo:sli_error:ratio_rate5m{path="/x"}', ["label 'path'"]),
        ("slo:sli_error:ratio_rate7m", ["unknown metric"]),
    ],
)
def test_the_check_catches_what_it_claims(promql: str, expected: list[str]) -> None:
    found = violations(promql)
    assert len(found) == len(expected), found
    for error, fragment in zip(found, expected, strict=True):
        assert fragment in error


def test_families_have_the_labels_the_configs_rely_on() -> None:
    """The alerts aggregate by these labels; renaming one in the catalog must fail loudly."""
    needed: dict[str, set[str]] = {
        "testboost_http_requests_total": {"method", "path", "status"},
        "testboost_http_request_duration_seconds": {"path"},
        "testboost_workflow_duration_seconds": {"workflow_type"},
        "testboost_llm_calls_total": {"provider"},
    }
    by_name: dict[str, MetricFamily] = {f.name: f for f in CATALOG}
    for name, labels in needed.items():
        assert labels <= set(by_name[name].labels), name
