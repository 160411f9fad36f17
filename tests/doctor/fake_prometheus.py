"""A healthy Prometheus answering the doctor's requests the way its HTTP API does
(https://prometheus.io/docs/prometheus/latest/querying/api/); tests change one answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from telemetry.catalog import API_JOB, CATALOG
from tests.monitoring.queries import alert_rules

# The Active Sessions panel's query as Grafana runs it (job testboost-api, every instance).
ACTIVE_SESSIONS_PANEL = 'max(testboost_active_sessions{job="testboost-api", instance=~".+"})'


def ok(data: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"status": "success", "data": data}


def vector(*metrics: dict[str, str]) -> dict[str, Any]:
    return {"resultType": "vector", "result": [{"metric": m, "value": [0, "1"]} for m in metrics]}


class Prometheus:
    """A healthy Prometheus; tests change one answer."""

    def __init__(self) -> None:
        self.stored = {name for family in CATALOG for name in family.series_names}
        self.empty_queries: set[str] = set()
        # expr → the values it answers, one series each ("NaN" as Prometheus writes it).
        self.answers: dict[str, list[str]] = {}
        self.target = {
            "scrapePool": API_JOB,
            "scrapeUrl": "http://host.docker.internal:8000/metrics",
            "health": "up",
            "lastError": "",
            "lastScrapeDuration": 0.004,
            "scrapeInterval": "15s",
            "scrapeTimeout": "10s",
            "labels": {"job": API_JOB, "instance": "testboost-api"},
        }
        # Push mode's: the collector's exporter, whose pushed series keep their job and
        # instance (honor_labels).
        self.collector = {
            "scrapePool": "otel-collector",
            "scrapeUrl": "http://otel-collector:8889/metrics",
            "health": "up",
            "lastError": "",
            "lastScrapeDuration": 0.002,
            "scrapeInterval": "15s",
            "scrapeTimeout": "10s",
            "labels": {"job": "otel-collector", "instance": "otel-collector:8889"},
        }
        self.rules = [
            {
                "name": r["alert"],
                "type": "alerting",
                "health": "ok",
                "state": "inactive",
                "duration": 60,
                "alerts": [],
            }
            for r in alert_rules()
        ]
        self.alertmanagers = [{"url": "http://alertmanager:9093/api/v2/alerts"}]

    def query(self, params: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        expr = params["query"][0]
        if expr.startswith("group by (__name__)"):
            return ok(vector(*({"__name__": name} for name in sorted(self.stored))))
        if expr in self.answers:
            series = [
                {"metric": {"n": str(i)}, "value": [0, v]} for i, v in enumerate(self.answers[expr])
            ]
            return ok({"resultType": "vector", "result": series})
        return ok(vector() if expr in self.empty_queries else vector({}))

    def labels(self, params: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        series = params["match[]"][0].split("{")[0]
        family = next(f for f in CATALOG if series in f.series_names)
        return ok(["__name__", "job", "instance", "le", *family.labels])

    def routes(self) -> dict[str, Any]:
        return {
            "/-/ready": (200, "Prometheus Server is Ready.\n"),
            "/api/v1/targets": ok(
                {"activeTargets": [self.target, self.collector], "droppedTargets": []}
            ),
            "/api/v1/query": self.query,
            "/api/v1/labels": self.labels,
            "/api/v1/rules": ok({"groups": [{"name": "testboost", "rules": self.rules}]}),
            "/api/v1/alertmanagers": ok({"activeAlertmanagers": self.alertmanagers}),
        }

    def fire(self, name: str, seconds_ago: float) -> None:
        """`name` fires since `seconds_ago` (active since then plus the rule's `for`)."""
        rule = next(r for r in self.rules if r["name"] == name)
        active = datetime.now(UTC) - timedelta(seconds=seconds_ago + rule["duration"])
        stamp = active.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # nanoseconds, as Prometheus
        rule["alerts"].append({"labels": {"alertname": name}, "state": "firing", "activeAt": stamp})
