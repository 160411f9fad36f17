"""What this repository ships that the checks compare against: the Grafana dashboards (their
uids and every PromQL expression) and the datasource uid. (The guide's seven alerts are
`telemetry.catalog.GUIDE_ALERTS`.)

The dashboards are read from `--monitoring-dir`, else from the copy an installed wheel
carries (`doctor/dashboards/`, pyproject.toml's force-include), else from the checkout
(`monitoring/` beside this package; the Docker image keeps that folder), so the queries
checked are the ones Grafana runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doctor.errors import Failed

DEFAULT_MONITORING_DIR = Path(__file__).resolve().parent.parent / "monitoring"
INSTALLED_DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
# monitoring/grafana/provisioning/datasources/prometheus.yml (tests/doctor checks they agree).
DATASOURCE_UID = "testboost-prometheus"


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    expr: str


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    queries: tuple[Query, ...]


def dashboards_dir(monitoring_dir: Path | None) -> Path:
    if monitoring_dir is None and INSTALLED_DASHBOARDS.is_dir():
        return INSTALLED_DASHBOARDS
    return (monitoring_dir or DEFAULT_MONITORING_DIR) / "grafana" / "dashboards"


def load_dashboards(monitoring_dir: Path | None = None) -> list[Dashboard]:
    folder = dashboards_dir(monitoring_dir)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise Failed(f"no dashboards in {folder}: run from a checkout or pass --monitoring-dir")
    return [_dashboard(json.loads(path.read_text())) for path in files]


def _dashboard(doc: dict[str, Any]) -> Dashboard:
    title = doc["title"]
    defaults = default_selection(doc)
    queries = tuple(
        Query(title, panel["title"], expand(target["expr"], defaults))
        for panel in all_panels(doc.get("panels", []))
        if panel.get("type") != "row"
        for target in panel.get("targets", [])
        if target.get("expr")
    )
    return Dashboard(doc["uid"], title, queries)


def default_selection(doc: dict[str, Any]) -> dict[str, str]:
    """Each template variable's value as the dashboard opens: its current value, or its
    `allValue` when "All" is selected (the job and instance pickers: all replicas)."""
    selection: dict[str, str] = {}
    for variable in doc.get("templating", {}).get("list", []):
        value = variable.get("current", {}).get("value")
        if value in ("$__all", ["$__all"]):
            # Grafana's own "All" without allValue is every value: any value, as a regex.
            selection[variable["name"]] = variable.get("allValue") or ".*"
        else:
            selection[variable["name"]] = value[0] if isinstance(value, list) else str(value)
    return selection


def expand(expr: str, selection: dict[str, str]) -> str:
    """`expr` as Grafana sends it with `selection`: every $name / ${name} of it replaced;
    others (Grafana's own $__interval..., in a customised dashboard) left as they are."""
    return _VARIABLE.sub(lambda m: selection.get(m.group(1) or m.group(2), m.group(0)), expr)


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels in order, the panels nested in rows included."""
    out: list[dict[str, Any]] = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))
    return out
