"""Every check, in the order they print: API, Prometheus (its scrape interval against the API's
new-series hold last), the push path (agent and freshness, push mode only), Jaeger (traces),
Alertmanager, Grafana. Each component's gate runs first (doctor/runner.py)."""

from __future__ import annotations

from doctor.checks import alertmanager, api, grafana, jaeger, prometheus, push, scrape_interval
from doctor.model import Check

CHECKS: tuple[Check, ...] = (
    *api.CHECKS,
    *prometheus.CHECKS,
    *scrape_interval.CHECKS,
    *push.CHECKS,
    *jaeger.CHECKS,
    *alertmanager.CHECKS,
    *grafana.CHECKS,
)
