"""Every check, in the order they print: API, Prometheus, the push path (agent and freshness,
push mode only), Jaeger (traces), Alertmanager, Grafana. Each component's gate runs first
(doctor/runner.py)."""

from __future__ import annotations

from doctor.checks import alertmanager, api, grafana, jaeger, prometheus, push
from doctor.model import Check

CHECKS: tuple[Check, ...] = (
    *api.CHECKS,
    *prometheus.CHECKS,
    *push.CHECKS,
    *jaeger.CHECKS,
    *alertmanager.CHECKS,
    *grafana.CHECKS,
)
