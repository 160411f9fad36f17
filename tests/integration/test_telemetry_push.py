"""Push mode and traces against a real OTLP/HTTP receiver; the off switch."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from telemetry import TelemetryConfig
from telemetry.catalog import CATALOG
from tests.conftest import AppFactory
from tests.support.otlp_receiver import GrpcOtlpReceiver, OtlpReceiver
from tests.support.waiting import session_in, until


def run_sessions(client: TestClient, count: int) -> None:
    ids = [
        client.post(
            "/api/v2/sessions", json={"session_type": "impact_analysis", "project_path": "/p"}
        ).json()["id"]
        for _ in range(count)
    ]
    for session_id in ids:
        session_in(client, session_id, "completed")


def test_push_exports_the_catalog_names_and_labels(
    receiver: OtlpReceiver, make_client: AppFactory
) -> None:
    client = make_client(telemetry=TelemetryConfig(metrics_exporter="otlp", export_interval_ms=200))
    run_sessions(client, 2)
    for _ in range(5):
        client.get("/api/v2/sessions/nope")

    key = (("method", "GET"), ("path", "/api/v2/sessions/{session_id}"), ("status", "404"))

    def exported_everything() -> dict | None:
        # Every family, and an export taken after the last request.
        points = receiver.latest_points()
        names = {f.otel_name for f in CATALOG}
        if not names <= set(points):
            return None
        http = {tuple(sorted(a.items())): p for a, p in points["testboost_http_requests"]}
        return points if key in http and http[key].as_int == 5 else None

    points = until(exported_everything, timeout=10, message="all families pushed")
    for family in CATALOG:
        for attrs, _point in points[family.otel_name]:
            assert set(attrs) == set(family.labels), (family.name, attrs)
    histogram = points["testboost_workflow_duration"][0][1]
    assert list(histogram.explicit_bounds) == list(
        next(f for f in CATALOG if f.otel_name == "testboost_workflow_duration").buckets
    )
    resource = receiver.metrics[-1].resource_metrics[0].resource
    attributes = {a.key: a.value.string_value for a in resource.attributes}
    assert attributes["service.name"] == "testboost-api" and attributes["service.instance.id"]


def test_push_mode_metrics_endpoint_stays_up_but_empty(
    receiver: OtlpReceiver, make_client: AppFactory
) -> None:
    client = make_client(telemetry=TelemetryConfig(metrics_exporter="otlp"))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["x-testboost-metrics-exporter"] == "otlp"
    assert "testboost_" not in response.text.replace('up{job="testboost-api"}', "")


def test_shutdown_flushes_pushed_metrics(receiver: OtlpReceiver, make_client: AppFactory) -> None:
    client = make_client(
        telemetry=TelemetryConfig(metrics_exporter="otlp", export_interval_ms=60_000)
    )
    run_sessions(client, 1)
    assert receiver.metrics == []  # the interval has not elapsed
    client.__exit__(None, None, None)
    assert "testboost_workflow" in receiver.latest_points()


def test_sdk_disabled_records_nothing(make_client: AppFactory) -> None:
    client = make_client(telemetry=TelemetryConfig(disabled=True))
    run_sessions(client, 1)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["x-testboost-metrics-exporter"] == "disabled"
    assert "testboost_" not in response.text.replace('up{job="testboost-api"}', "")


def test_traces_cover_http_sql_llm_and_workflow(
    receiver: OtlpReceiver, make_client: AppFactory
) -> None:
    client = make_client(telemetry=TelemetryConfig(traces_exporter="otlp"))
    run_sessions(client, 1)
    client.get(
        "/api/v2/sessions",
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    client.__exit__(None, None, None)  # flushes the batch processor
    spans = receiver.spans()
    names = {span.name for span in spans}
    assert {
        "POST /api/v2/sessions",
        "GET /api/v2/sessions/{session_id}",
        "workflow.run",
        "llm.chat",
    } <= names
    assert any(
        (span.kind == span.SPAN_KIND_CLIENT and "SELECT" in span.name)
        or span.name.startswith(("SELECT", "INSERT", "UPDATE"))
        for span in spans
    )
    llm = next(span for span in spans if span.name == "llm.chat")
    attrs = {a.key: a.value.string_value for a in llm.attributes}
    assert attrs["gen_ai.system"] == "simulated" and attrs["testboost.llm.outcome"] == "success"
    incoming = next(span for span in spans if span.name == "GET /api/v2/sessions")
    assert incoming.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"


def test_pushed_histograms_carry_exemplars_of_sampled_requests(
    receiver: OtlpReceiver, make_client: AppFactory
) -> None:
    """Push with traces on: the duration of a sampled request is exemplified by its trace id,
    on the wire as the collector receives it; an unsampled request leaves none."""
    client = make_client(
        telemetry=TelemetryConfig(
            metrics_exporter="otlp",
            traces_exporter="otlp",
            export_interval_ms=200,
            new_series_hold_ms=0,  # a held series shows zero, without exemplars
        )
    )
    sampled, unsampled = "0af7651916cd43dd8448eb211c80319c", "1bf7651916cd43dd8448eb211c80319c"
    client.get(
        "/api/v2/sessions/nope", headers={"traceparent": f"00-{sampled}-b7ad6b7169203331-01"}
    )
    client.get("/api/v2/sessions", headers={"traceparent": f"00-{unsampled}-b7ad6b7169203331-00"})

    def exemplified() -> dict[str, set[str]] | None:
        with receiver.lock:
            requests = list(receiver.metrics)
        found: dict[str, set[str]] = {}
        for request in requests:  # each bucket's newest, in every export until replaced
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name != "testboost_http_request_duration":
                            continue
                        for point in metric.histogram.data_points:
                            path = next(
                                a.value.string_value for a in point.attributes if a.key == "path"
                            )
                            found.setdefault(path, set()).update(
                                e.trace_id.hex() for e in point.exemplars
                            )
        return found if found.get("/api/v2/sessions/{session_id}") else None

    found = until(exemplified, timeout=10, message="an exemplar pushed")
    assert found["/api/v2/sessions/{session_id}"] == {sampled}
    assert not found.get("/api/v2/sessions")


def test_push_over_grpc(make_client: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    with GrpcOtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        client = make_client(
            telemetry=TelemetryConfig(
                metrics_exporter="otlp", metrics_protocol="grpc", export_interval_ms=200
            )
        )
        run_sessions(client, 1)
        points = until(
            lambda: receiver.latest_points().get("testboost_workflow"),
            timeout=10,
            message="a pushed workflow count",
        )
        assert {attrs["workflow_type"] for attrs, _ in points} >= {"impact_analysis"}
        client.__exit__(None, None, None)  # shut down (a last export) while the receiver runs


def test_log_records_carry_the_trace_context(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from opentelemetry.sdk.trace import TracerProvider

    from telemetry.tracing import TraceContextFilter

    logger = logging.getLogger("testboost.test")
    handler = caplog.handler
    handler.addFilter(TraceContextFilter())
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logger.warning("inside")
    logger.warning("outside")
    inside, outside = caplog.records[-2:]
    assert inside.trace_id == format(span.get_span_context().trace_id, "032x")  # type: ignore[attr-defined]
    assert inside.span_id == format(span.get_span_context().span_id, "016x")  # type: ignore[attr-defined]
    assert outside.trace_id == "-" and outside.span_id == "-"  # type: ignore[attr-defined]
