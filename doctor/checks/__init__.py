"""Every check, in the order they run and print: API, Prometheus, Alertmanager, Grafana."""

from __future__ import annotations

from doctor.checks import alertmanager, api, grafana, prometheus
from doctor.model import Check

CHECKS: tuple[Check, ...] = (
    *api.CHECKS,
    *prometheus.CHECKS,
    *alertmanager.CHECKS,
    *grafana.CHECKS,
)
