"""What the doctor compares against agrees with what the repository ships."""

from __future__ import annotations

from pathlib import Path

import yaml

from doctor.shipped import (
    DATASOURCE_UID,
    DEFAULT_MONITORING_DIR,
    default_selection,
    expand,
    load_dashboards,
)
from tests.monitoring.queries import dashboard_queries

REPO = Path(__file__).resolve().parents[2]


def test_default_monitoring_dir_is_the_checkouts() -> None:
    assert DEFAULT_MONITORING_DIR == REPO / "monitoring"


def test_datasource_uid_is_the_provisioned_one() -> None:
    provisioning = REPO / "monitoring" / "grafana" / "provisioning" / "datasources"
    uids = [
        source["uid"]
        for path in provisioning.glob("*.yml")
        for source in yaml.safe_load(path.read_text())["datasources"]
        if source["type"] == "prometheus"  # not Jaeger's, where exemplars link
    ]
    assert uids == [DATASOURCE_UID]


def test_doctor_reads_every_dashboard_query_the_monitoring_tests_read() -> None:
    mine = [(q.dashboard, q.panel, q.expr) for d in load_dashboards() for q in d.queries]
    assert mine == dashboard_queries()
    assert len({d.uid for d in load_dashboards()}) == 3


def test_queries_are_expanded_as_grafana_opens_the_dashboard() -> None:
    """Each variable's current value, or its allValue (Grafana's "every value" without one);
    a variable the dashboard does not define ($__rate_interval in a customised copy) is left
    as it is rather than crashing the doctor."""
    doc = {
        "templating": {
            "list": [
                {"name": "job", "current": {"value": "testboost-api"}},
                {"name": "instance", "current": {"value": ["$__all"]}, "allValue": ".+"},
                {"name": "provider", "current": {"value": "$__all"}},
            ]
        }
    }
    selection = default_selection(doc)
    assert selection == {"job": "testboost-api", "instance": ".+", "provider": ".*"}
    expr = 'rate(x{job="$job", instance=~"${instance}", p=~"$provider"}[$__rate_interval])'
    assert expand(expr, selection) == (
        'rate(x{job="testboost-api", instance=~".+", p=~".*"}[$__rate_interval])'
    )
