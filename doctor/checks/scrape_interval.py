"""Prometheus scrapes the API's series often enough for the API's new-series hold.

A new counter or histogram series shows 0 for a while before its first value (the hold,
telemetry/series_start.py), so that Prometheus records the zero first and rate() and increase()
count the first observations. Scraped less often than that, Prometheus misses the zero, and the
first observations of every new series are lost, silently.

The API says its hold in the `x-testboost-new-series-hold-seconds` header of /metrics (pull and
push alike); Prometheus says the interval it really uses for each target in /api/v1/targets.
The series are scraped from the API's job in pull mode, from the collector's `prometheus`
exporter (job otel-collector, monitoring/prometheus/scrape.d/otel-collector.yml) in push mode.
The hold must cover two scrapes, one plus a late one: the rule the API derives its hold by
(telemetry/config.py), checked against the interval Prometheus uses rather than the one meant.
"""

from __future__ import annotations

import re

from doctor.checks.api import OFF, PUSH, exporter, new_series_hold
from doctor.checks.prometheus import active_targets
from doctor.context import Context
from doctor.errors import Failed, Skipped
from doctor.model import Check, Outcome
from doctor.topology import Topology
from telemetry.catalog import API_JOB, HOLD_HEADER

COLLECTOR_JOB = "otel-collector"
SCRAPES = 2  # the hold must cover one scrape, plus one late
DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration: "15s", "1m30s", "500ms"."""
    parts = DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * SECONDS[unit] for number, unit in parts)


def covered(context: Context) -> Outcome:
    try:
        hold = new_series_hold(context)
    except Failed as exc:  # the API's own checks say why
        raise Skipped(f"no hold from the API's /metrics: {exc}") from None
    if hold is None:
        raise Skipped(f"the API sends no {HOLD_HEADER} header (a version before it)")
    mode = exporter(context)
    if mode in OFF:
        raise Skipped(f"metrics turned off ({mode})")
    job = COLLECTOR_JOB if mode == PUSH else API_JOB
    targets = active_targets(context, job)
    if not targets:
        if mode == PUSH:
            raise Skipped(f"push mode, no {job!r} target: remote write (nothing scraped)")
        raise Skipped(f"no active target in job {job!r}: see the target check")
    try:
        interval = max(parse_duration(t["scrapeInterval"]) for t in targets)
    except (KeyError, ValueError) as exc:
        raise Skipped(f"Prometheus gives no usable scrapeInterval ({exc})") from None
    seen = f"the API holds new series {hold:g} s; job {job!r} is scraped every {interval:g} s"
    if hold >= SCRAPES * interval:
        return Outcome(True, f"{seen} ({hold / interval:g} scrapes)")
    return Outcome(
        False,
        f"{seen}: under {SCRAPES} scrapes, the first observations of a new series are lost",
        fields={"interval_ms": f"{interval * 1000:.0f}", "job": job},
    )


CHECKS = (
    Check(
        "prometheus",
        "scrape interval within the API's new-series hold",
        {
            Topology.COMPOSE: "Set OTEL_METRIC_EXPORT_INTERVAL={interval_ms} (job {job}'s "
            "scrape interval, in ms) in the testboost-api service's environment, then compose "
            "`up -d testboost-api`; or scrape as often as the API exports (scrape_interval in "
            "prometheus.yml). `curl -si {api}/metrics` shows the hold.",
            Topology.LOCAL: "The stack sets the scrape interval and the API's "
            "OTEL_METRIC_EXPORT_INTERVAL together (job {job} is scraped every "
            "{interval_ms} ms): restart it, {restart_stack}. `curl -si {api}/metrics` shows "
            "the hold.",
            Topology.KUBERNETES: "Set OTEL_METRIC_EXPORT_INTERVAL={interval_ms} (job {job}'s "
            "scrape interval, in ms) on the API (the chart's extraEnv), then `helm upgrade`; or "
            "scrape as often as the API exports (serviceMonitor.interval). `curl -si "
            "{api}/metrics` shows the hold.",
        },
        covered,
        needs=("prometheus", "api"),
        requires=("api",),
    ),
)
