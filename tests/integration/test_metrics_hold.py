"""What a newcomer sees on /metrics right after using the API: the new-series hold in a header
on every answer (pull, push, off; `testboost doctor` compares it with Prometheus' scrape
interval), and in pull mode's text format a first comment line saying why counters read 0."""

from __future__ import annotations

from telemetry import TelemetryConfig
from telemetry.catalog import HOLD_HEADER
from tests.conftest import AppFactory
from tests.support.exposition import Exposition
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.waiting import session_in

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def test_right_after_use_the_text_says_why_counters_read_zero(make_client: AppFactory) -> None:
    client = make_client(telemetry=TelemetryConfig())  # the production hold: 2 x 15 s
    session = client.post(
        "/api/v2/sessions", json={"session_type": "impact_analysis", "project_path": "/p"}
    ).json()
    session_in(client, session["id"], "completed")

    response = client.get("/metrics")
    assert response.headers[HOLD_HEADER] == "30"
    first, _rest = response.text.split("\n", 1)
    assert first.startswith("# TestBoost: ") and " new series read 0 until " in first
    assert "(held 30 s so Prometheus records their start; docs/metrics.md#first-observations)" in (
        first
    )
    assert Exposition(response.text).value("testboost_workflow_total", status="completed") == 0

    openmetrics = client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert openmetrics.headers[HOLD_HEADER] == "30"
    assert "TestBoost" not in openmetrics.text


def test_nothing_held_no_comment(make_client: AppFactory) -> None:
    client = make_client(telemetry=TelemetryConfig(new_series_hold_ms=0))
    response = client.get("/metrics")
    assert response.headers[HOLD_HEADER] == "0"
    assert response.text.startswith("# HELP ")


def test_push_mode_names_its_hold(receiver: OtlpReceiver, make_client: AppFactory) -> None:
    client = make_client(telemetry=TelemetryConfig(metrics_exporter="otlp"))
    assert client.get("/metrics").headers[HOLD_HEADER] == "45"  # 3 export intervals


def test_metrics_off_still_names_the_hold(make_client: AppFactory) -> None:
    client = make_client(telemetry=TelemetryConfig(disabled=True, export_interval_ms=60_000))
    assert client.get("/metrics").headers[HOLD_HEADER] == "120"
