"""Every check, in the order they run and print: API, Prometheus, the push path (agent and
freshness, push mode only), Alertmanager, Grafana."""

from __future__ import annotations

from doctor.checks import alertmanager, api, grafana, prometheus, push
from doctor.model import Check

CHECKS: tuple[Check, ...] = (
    *api.CHECKS,
    *prometheus.CHECKS,
    *push.CHECKS,
    *alertmanager.CHECKS,
    *grafana.CHECKS,
)
