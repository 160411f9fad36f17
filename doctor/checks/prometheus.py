"""Prometheus: ready, the API target UP, the contract's families stored, rules and alerts
loaded, an Alertmanager to send to, and data behind every shipped dashboard query."""

from __future__ import annotations

import time
from typing import Any

from doctor.checks.push import metrics_path, push_mode
from doctor.context import Context
from doctor.contract import Findings, check_present, stored_label_findings
from doctor.errors import Failed
from doctor.model import Check, Outcome
from doctor.panels import State, verdict
from doctor.shipped import load_dashboards
from doctor.topology import Topology
from telemetry.catalog import API_JOB, CATALOG, GUIDE_ALERTS

LABELS_WINDOW_S = 600  # label names of series seen in the last 10 minutes
MAX_LISTED = 4  # panels named in a detail; --json has the same line
# Every series name of the catalog, of the API's job.
SERIES = '{{__name__=~"{}", job="{}"}}'.format(
    "|".join(name for family in CATALOG for name in family.series_names), API_JOB
)
# The series of the path checked, when the API says which: scraped ones share job and instance
# with their target's `up`; pushed ones carry the API's own instance id, which no target has.
# So a leftover of the other topology in Prometheus' data vouches for nothing.
PATH_SERIES = {
    True: f"{SERIES} unless on (job, instance) up",
    False: f"{SERIES} and on (job, instance) up",
    None: SERIES,
}


def ready(context: Context) -> Outcome:
    response = context.get("prometheus", "/-/ready")
    return Outcome(response.status_code == 200, f"HTTP {response.status_code}")


def active_targets(context: Context, job: str) -> list[dict[str, Any]]:
    """Prometheus' active targets of `job`: by their job label, since the scrape pool is named
    after the job only in a prometheus.yml (the Prometheus Operator names it
    serviceMonitor/<namespace>/<name>/<endpoint>)."""
    data = context.prometheus("/api/v1/targets", {"state": "active"})
    return [
        t
        for t in data.get("activeTargets", [])
        if (t.get("labels") or {}).get("job", t.get("scrapePool")) == job
    ]


def target(context: Context) -> Outcome:
    targets = active_targets(context, API_JOB)
    if not targets:
        raise Failed(f"no active target in job {API_JOB!r}")
    parts = []
    for t in targets:
        where = t.get("scrapeUrl", "?")
        duration = float(t.get("lastScrapeDuration") or 0)
        timing = f"scrape {duration:.3f}s of {t.get('scrapeTimeout', '?')} timeout"
        error = t.get("lastError") or ""
        parts.append(
            f"{where} {t.get('health', '?')}, {timing}" + (f", error: {error}" if error else "")
        )
    up = all(t.get("health") == "up" for t in targets)
    return Outcome(up, "; ".join(parts))


def families(context: Context) -> Outcome:
    """Every catalog family stored with its labels. Only the API's series count: in both
    topologies they carry job="testboost-api" (the collector keeps the API's job), and the
    runtime families have standard names (process_*) that Prometheus' own job exposes too;
    and only those of the path the API uses (PATH_SERIES)."""
    query = f"group by (__name__) ({PATH_SERIES[push_mode(context)]})"
    result = context.prometheus("/api/v1/query", {"query": query})["result"]
    stored = {series["metric"]["__name__"] for series in result}
    if not stored:
        return Outcome(False, f'no catalog series of job="{API_JOB}" in Prometheus now')
    findings, seen = Findings(), 0
    now = time.time()
    for family in CATALOG:
        if not check_present(family, stored, findings):
            continue
        seen += 1
        series = family.series_names[0]
        names = context.prometheus(
            "/api/v1/labels",
            {
                "match[]": f'{series}{{job="{API_JOB}"}}',
                "start": f"{now - LABELS_WINDOW_S:.0f}",
                "end": f"{now:.0f}",
            },
        )
        problem = stored_label_findings(family, series, set(names or []))
        if problem:
            findings.problems.append(problem)
    return Outcome(not findings.problems, findings.summary(seen))


def _alerting_rules(context: Context) -> list[dict[str, Any]]:
    groups = context.prometheus("/api/v1/rules", {"type": "alert"}).get("groups", [])
    return [rule for group in groups for rule in group.get("rules", [])]


def rules(context: Context) -> Outcome:
    loaded = _alerting_rules(context)
    if not loaded:
        return Outcome(False, "no alerting rules loaded")
    broken = [f"{r['name']}: {r.get('lastError', '')}" for r in loaded if r.get("health") == "err"]
    if broken:
        return Outcome(False, "; ".join(broken))
    return Outcome(True, f"{len(loaded)} alerting rules, none in error")


def alerts(context: Context) -> Outcome:
    names = {rule["name"] for rule in _alerting_rules(context)}
    missing = [name for name in GUIDE_ALERTS if name not in names]
    if missing:
        return Outcome(False, f"missing: {', '.join(missing)}")
    return Outcome(True, f"all {len(GUIDE_ALERTS)} present")


def alertmanagers(context: Context) -> Outcome:
    active = context.prometheus("/api/v1/alertmanagers").get("activeAlertmanagers", [])
    urls = [a.get("url", "?") for a in active]
    return Outcome(bool(urls), f"sends to {', '.join(urls)}" if urls else "no Alertmanager")


def dashboards(context: Context) -> Outcome:
    """Every query of the shipped dashboards shows a number (doctor/panels.py says when a
    query without one is broken, and when it only had nothing to show in its window)."""
    broken, idle, total = [], [], 0
    for dashboard in load_dashboards(context.options.monitoring_dir):
        for query in dashboard.queries:
            total += 1
            data = context.prometheus("/api/v1/query", {"query": query.expr})
            found = verdict(context, query.expr, data)
            where = f"{query.dashboard} > {query.panel}: {found.reason}"
            if found.state is State.BROKEN:
                broken.append(where)
            elif found.state is State.IDLE:
                idle.append(where)
    if broken:
        detail = f"{len(broken)}/{total} queries without data: {_listed(broken)}"
        if idle:
            detail += f" (and {len(idle)} without observations in their window)"
        return Outcome(False, detail)
    if idle:
        return Outcome(
            True,
            f"{total - len(idle)}/{total} queries return data; idle, not broken: {_listed(idle)}",
            warning=True,
        )
    return Outcome(True, f"{total}/{total} queries return data")


def _listed(entries: list[str]) -> str:
    """Each panel and reason once (a panel's p50, p95 and p99 queries fail alike)."""
    unique = list(dict.fromkeys(entries))
    more = len(unique) - MAX_LISTED
    return "; ".join(unique[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")


CHECKS = (
    Check(
        "prometheus",
        "ready",
        "Start Prometheus ({start_prometheus}) and check `curl -i {prometheus}/-/ready`; "
        "{log_prometheus} says why it is not ready.",
        ready,
        gate=True,
    ),
    Check(
        "prometheus",
        f"target {API_JOB} UP",
        {
            Topology.COMPOSE: "Open {prometheus_targets}: the testboost-api target must be UP. "
            "Start the API ({start_api}), make its address in prometheus.yml reach it (the "
            "testboost-api service on testboost-network; an API outside Docker: "
            "host.docker.internal, the API listening beyond 127.0.0.1, on port {api_port}), or "
            "give Prometheus the metrics token (credentials_file).",
            Topology.LOCAL: "`curl -s {prometheus_targets}` (Debian's Prometheus 2.53 shows it "
            "at {prometheus}/classic/targets, 3.5 has no web UI): the testboost-api target "
            "must be UP. The stack points it at the API's port {api_port}: {start_api} starts "
            "what stopped; {log_api} and {log_prometheus} say why a scrape fails.",
            Topology.KUBERNETES: "Open {prometheus_targets}: each API pod must be an UP "
            "testboost-api target. `kubectl -n testboost get servicemonitor,endpoints`: your "
            "Prometheus must select the ServiceMonitor (serviceMonitor.labels, e.g. its release "
            "label), the Service must have ready pods, and with metricsToken.enabled both read "
            "the same Secret (docs/kubernetes.md).",
        },
        target,
        requires=("api",),
    ),
    Check(
        "prometheus",
        "catalog families stored",
        "`curl -s '{prometheus}/api/v1/query?query=testboost_active_sessions'` must show the "
        "API's series. Pull: the target must be UP. Push: check OTEL_EXPORTER_OTLP_ENDPOINT "
        "and the collector's delivery to Prometheus.",
        families,
        requires=metrics_path,
    ),
    Check(
        "prometheus",
        "rules loaded and healthy",
        {
            Topology.COMPOSE: "`promtool check rules monitoring/prometheus/alerts.yml`; "
            "rule_files in prometheus.yml must name alerts.yml; reload Prometheus, then "
            "{prometheus_rules} shows each rule.",
            Topology.LOCAL: "`promtool check rules monitoring/prometheus/alerts.yml`; the stack "
            "loads the rules once Prometheus scrapes the API ({start_prometheus}, "
            "{log_prometheus}); `curl -s {prometheus_rules}` shows each rule.",
            Topology.KUBERNETES: "`promtool check rules monitoring/prometheus/alerts.yml`; "
            "your Prometheus' ruleSelector must select the chart's PrometheusRule "
            "(prometheusRule.labels; `kubectl -n testboost get prometheusrule`); "
            "{prometheus_rules} shows each rule.",
        },
        rules,
    ),
    Check(
        "prometheus",
        "the seven guide alerts",
        {
            Topology.COMPOSE: "Mount monitoring/prometheus/alerts.yml as "
            "/etc/prometheus/alerts.yml and reload; {prometheus_rules} lists the alerts loaded.",
            Topology.LOCAL: "The stack loads this checkout's monitoring/prometheus/alerts.yml "
            "(`make rules` writes it): restart it, {restart_stack}; `curl -s "
            "{prometheus_rules}` lists the alerts loaded.",
            Topology.KUBERNETES: "`helm upgrade` the chart from this checkout (its "
            "PrometheusRule carries alerts.yml); {prometheus_rules} lists the alerts loaded.",
        },
        alerts,
    ),
    Check(
        "prometheus",
        "Alertmanager configured",
        {
            Topology.COMPOSE: "alerting.alertmanagers in prometheus.yml must reach Alertmanager "
            "({alertmanager} from this host; its compose service name from a container); `curl "
            "-s {prometheus}/api/v1/alertmanagers` lists the ones Prometheus found.",
            Topology.LOCAL: "The stack's prometheus.yml sends to its Alertmanager "
            "({alertmanager}): {start_alertmanager} starts what stopped; `curl -s "
            "{prometheus}/api/v1/alertmanagers` lists the ones Prometheus found.",
            Topology.KUBERNETES: "Your Prometheus object's spec.alerting must name "
            "Alertmanager's Service (`kubectl get prometheus -A -o yaml`); `curl -s "
            "{prometheus}/api/v1/alertmanagers` lists the ones Prometheus found.",
        },
        alertmanagers,
    ),
    Check(
        "prometheus",
        "dashboard queries return data",
        "Grafana shows no data there: {run_query}. Not scraped: see "
        "the target and families checks; observations but NaN: the histogram's _bucket series "
        'must reach Prometheus, le="+Inf" included (docs/troubleshooting.md).',
        dashboards,
        requires=metrics_path,
    ),
)
