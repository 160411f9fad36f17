"""Grafana: health, the provisioned Prometheus datasource answers, the TestBoost dashboards
are provisioned. Endpoints from Grafana's HTTP API documentation:
https://grafana.com/docs/grafana/latest/developers/http_api/other/#health-api
https://grafana.com/docs/grafana/latest/developers/http_api/data_source/
https://grafana.com/docs/grafana/latest/developers/http_api/dashboard/
"""

from __future__ import annotations

from doctor.context import Context
from doctor.errors import Failed
from doctor.model import Check, Outcome
from doctor.shipped import DATASOURCE_UID, load_dashboards


def _auth_hint(status: int) -> str:
    return (
        " (pass --grafana-token, or --grafana-user/--grafana-password)"
        if status in (401, 403)
        else ""
    )


def health(context: Context) -> Outcome:
    body = context.json("grafana", "/api/health")
    database = body.get("database", "?")
    return Outcome(database == "ok", f"database {database}, version {body.get('version', '?')}")


def datasource(context: Context) -> Outcome:
    response = context.get("grafana", f"/api/datasources/uid/{DATASOURCE_UID}/health")
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("message", response.text[:100]) if isinstance(body, dict) else ""
    if response.status_code == 404:
        return Outcome(False, f"no datasource with uid {DATASOURCE_UID}")
    ok = response.status_code == 200 and body.get("status") == "OK"
    prefix = "" if ok else f"HTTP {response.status_code}{_auth_hint(response.status_code)}: "
    return Outcome(ok, f"{prefix}{DATASOURCE_UID}: {message}")


def dashboards(context: Context) -> Outcome:
    found, missing = [], []
    for dashboard in load_dashboards(context.options.monitoring_dir):
        response = context.get("grafana", f"/api/dashboards/uid/{dashboard.uid}")
        if response.status_code in (401, 403):
            raise Failed(f"HTTP {response.status_code}{_auth_hint(response.status_code)}")
        meta = response.json().get("meta", {}) if response.status_code == 200 else {}
        if response.status_code == 200 and meta.get("provisioned"):
            found.append(dashboard.title)
        else:
            reason = (
                "not provisioned" if response.status_code == 200 else f"HTTP {response.status_code}"
            )
            missing.append(f"{dashboard.uid} ({reason})")
    total = len(found) + len(missing)
    if missing:
        return Outcome(False, f"{len(found)}/{total} provisioned; missing: {', '.join(missing)}")
    return Outcome(True, f"{total}/{total} provisioned: {', '.join(found)}")


CHECKS = (
    Check(
        "grafana",
        "health",
        "Start Grafana ({start_grafana}) and check `curl -i {grafana}/api/health`; "
        "{log_grafana} says why it is unhealthy.",
        health,
        gate=True,
    ),
    Check(
        "grafana",
        f"datasource {DATASOURCE_UID}",
        "At {grafana}, Connections > Data sources > Prometheus > Test: its URL "
        "(monitoring/grafana/provisioning/datasources/prometheus.yml) must reach the "
        "Prometheus this doctor reads at {prometheus}, from where Grafana runs.",
        datasource,
        requires=("prometheus",),
    ),
    Check(
        "grafana",
        "TestBoost dashboards provisioned",
        "Mount monitoring/grafana/provisioning and monitoring/grafana/dashboards as in "
        "compose/docker-compose.monitoring.yaml; restart Grafana or wait 30 s; "
        "{grafana}/dashboards lists them.",
        dashboards,
    ),
)
