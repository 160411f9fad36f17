"""A future bug that labels a metric with something unbounded cannot explode memory: each
metric is capped and the overflow is visible."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.testclient import TestClient

from telemetry import TelemetryConfig, setup
from tests.support.exposition import Exposition

SDK_CARDINALITY_LIMIT = 2000  # the OpenTelemetry SDK's default per metric stream


def test_an_unbounded_label_is_capped_with_a_visible_overflow() -> None:
    telemetry = setup(TelemetryConfig(new_series_hold_ms=0))
    assert telemetry.meter_provider is not None
    app = Starlette()
    telemetry.instrument_app(app)
    rogue = telemetry.meter_provider.get_meter("bug").create_counter("testboost_rogue")
    for n in range(SDK_CARDINALITY_LIMIT + 500):
        rogue.add(1, {"user_id": str(n)})
    exposition = Exposition(TestClient(app).get("/metrics").text)
    series = exposition.series("testboost_rogue_total")
    assert len(series) <= SDK_CARDINALITY_LIMIT + 1
    overflow = [s for s in series if s.labels.get("otel_metric_overflow") == "true"]
    assert len(overflow) == 1 and overflow[0].value >= 500
    assert sum(s.value for s in series) == SDK_CARDINALITY_LIMIT + 500  # nothing dropped
    telemetry.shutdown()
