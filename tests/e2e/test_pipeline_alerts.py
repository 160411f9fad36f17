"""The pipeline watches itself: each alert of monitoring/prometheus/pipeline-alerts.yml fires
when its part of a real local stack is broken, and resolves when it is fixed. The stack runs the
push topology with traces (API → OTLP → collector → Prometheus, collector → Jaeger,
Prometheus → Alertmanager → the API's webhook) in fast mode: 1 s intervals, `for` 1 s, the
pipeline alerts' 5 min rates shortened to 15 s (devstack.configs)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx
import pytest

from devstack import Stack
from tests.e2e.conftest import StackFactory
from tests.e2e.helpers import Prometheus, Series, api_client

pytestmark = pytest.mark.e2e

# A recording rule that loads but fails at every evaluation: the arithmetic drops __name__, so
# `up` and `scrape_samples_scraped` of one target collide ("vector cannot contain metrics with
# the same labelset").
BROKEN_GROUP = """
  - name: broken-on-purpose
    rules:
      - record: broken:duplicate_labelsets
        expr: '{__name__=~"up|scrape_samples_scraped"} * 1'
"""


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory) -> Stack:
    # Firing alerts re-sent every second rather than every minute: the Watchdog dropped while
    # Alertmanager starts arrives at once, and a stopped Alertmanager shows in Prometheus'
    # send errors within the 15 s windows.
    return make_stack(mode="push", traces=True, prometheus_args=("--rules.alert.resend-delay=1s",))


@pytest.fixture(scope="module")
def prometheus(stack: Stack, prometheus_of: Callable[[Stack], Prometheus]) -> Prometheus:
    return prometheus_of(stack)


@pytest.fixture()
def api(stack: Stack) -> Iterator[httpx.Client]:
    with api_client(stack) as client:
        yield client


def firing(alert: str, **labels: str) -> str:
    matchers = "".join(f', {name}="{value}"' for name, value in labels.items())
    return f'ALERTS{{alertname="{alert}", alertstate="firing"{matchers}}}'


def wait_firing(prometheus: Prometheus, alert: str, timeout: float, **labels: str) -> Series:
    return prometheus.wait(firing(alert, **labels), timeout=timeout, message=f"{alert} firing")


def wait_resolved(prometheus: Prometheus, alert: str, timeout: float) -> None:
    prometheus.wait(
        f'ALERTS{{alertname="{alert}"}}',
        lambda result: not result,
        timeout=timeout,
        message=f"{alert} resolved",
    )


def active_alerts(stack: Stack, alert: str) -> list[dict[str, Any]]:
    """What Alertmanager holds of `alert` (status.inhibitedBy says what holds it back)."""
    response = httpx.get(
        f"{stack.urls['alertmanager']}/api/v2/alerts",
        params={"filter": f'alertname="{alert}"'},
        timeout=10,
    )
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return alerts


@contextmanager
def traffic(stack: Stack) -> Iterator[None]:
    """Requests in the background, every one a trace to export, until the block ends."""
    stop = threading.Event()

    def run() -> None:
        with api_client(stack) as client:
            while not stop.is_set():
                with suppress(httpx.HTTPError):
                    client.get("/api/v2/sessions")
                stop.wait(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def test_the_watchdog_always_fires_and_reaches_its_own_receiver(
    stack: Stack, prometheus: Prometheus, api: httpx.Client
) -> None:
    wait_firing(prometheus, "Watchdog", timeout=20)

    def delivered() -> dict[str, Any] | None:
        page = api.get("/api/v1/alerts", params={"alertname": "Watchdog"}).json()
        return page["items"][0] if page["items"] else None

    deadline = time.monotonic() + 30
    while (row := delivered()) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert row is not None, "the Watchdog never reached the API's inbox"
    assert row["receiver"] == "watchdog" and row["status"] == "firing", row
    assert row["severity"] == "none"


def test_failing_rule_evaluations_fire_prometheus_rule_failures(
    stack: Stack, prometheus: Prometheus
) -> None:
    rules = stack.workdir / "alerts.yml"
    shipped = rules.read_text()
    reload = stack.processes["prometheus"].pid
    try:
        rules.write_text(shipped + BROKEN_GROUP)
        os.kill(reload, signal.SIGHUP)
        series = wait_firing(prometheus, "PrometheusRuleFailures", timeout=30)
        assert [s["metric"]["rule_group"] for s in series] == [f"{rules};broken-on-purpose"]
        assert series[0]["metric"]["severity"] == "critical"
    finally:
        rules.write_text(shipped)
        os.kill(reload, signal.SIGHUP)
    wait_resolved(prometheus, "PrometheusRuleFailures", timeout=40)


def test_spans_jaeger_refuses_fire_collector_export_failing(
    stack: Stack, prometheus: Prometheus
) -> None:
    """Jaeger stopped: the collector retries each span batch for 30 s (fast mode's
    OTELCOL_RETRY_MAX_ELAPSED), then drops it and counts it in send_failed."""
    with traffic(stack):
        stack.stop("jaeger")
        try:
            series = wait_firing(
                prometheus, "OTelCollectorExportFailing", timeout=90, exporter="otlp_grpc/jaeger"
            )
            assert series[0]["metric"]["severity"] == "warning"
            assert prometheus.query(firing("OTelCollectorDown")) == []
        finally:
            stack.start("jaeger")
        wait_resolved(prometheus, "OTelCollectorExportFailing", timeout=90)


def test_a_stopped_collector_fires_collector_down_and_holds_back_stale_metrics(
    stack: Stack, prometheus: Prometheus
) -> None:
    stack.stop("otel-collector")
    try:
        wait_firing(prometheus, "OTelCollectorDown", timeout=30)
        # Its series gone, the API's metrics are stale too; Alertmanager holds that back.
        wait_firing(prometheus, "APIMetricsStale", timeout=40)

        def inhibited() -> bool:
            held = active_alerts(stack, "APIMetricsStale")
            return bool(held) and all(a["status"]["inhibitedBy"] for a in held)

        deadline = time.monotonic() + 20
        while not inhibited() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert inhibited(), active_alerts(stack, "APIMetricsStale")
    finally:
        stack.start("otel-collector")
    wait_resolved(prometheus, "OTelCollectorDown", timeout=30)
    wait_resolved(prometheus, "APIMetricsStale", timeout=40)


def test_an_api_that_cannot_push_fires_api_metrics_stale(
    stack: Stack, prometheus: Prometheus
) -> None:
    """The API keeps answering (up = 1) and the collector keeps serving its last values, but
    the API pushes to an endpoint where nothing listens: only the staleness shows it."""
    stack.config.api_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
    try:
        stack.stop("api")
        stack.start("api")
        wait_firing(prometheus, "APIMetricsStale", timeout=60)
        assert prometheus.value('sum(up{job="testboost-api"})') == 1
        assert prometheus.query(firing("OTelCollectorDown")) == []
    finally:
        del stack.config.api_env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        stack.stop("api")
        stack.start("api")
    wait_resolved(prometheus, "APIMetricsStale", timeout=40)


def test_a_failing_webhook_fires_alertmanager_notifications_failing(
    stack: Stack, prometheus: Prometheus
) -> None:
    """The API (every receiver's webhook) stopped: Alertmanager's deliveries fail."""
    stack.stop("api")
    try:
        series = wait_firing(
            prometheus, "AlertmanagerNotificationsFailing", timeout=90, integration="webhook"
        )
        assert series[0]["metric"]["severity"] == "critical"
    finally:
        stack.start("api")
    wait_resolved(prometheus, "AlertmanagerNotificationsFailing", timeout=90)


def test_an_unreachable_alertmanager_fires_prometheus_notifications_failing(
    stack: Stack, prometheus: Prometheus
) -> None:
    """The Watchdog is always there to send, so Prometheus' sends fail at once."""
    stack.stop("alertmanager")
    try:
        series = wait_firing(prometheus, "PrometheusNotificationsFailing", timeout=40)
        assert [s["metric"]["alertmanager"] for s in series] == [
            f"{stack.urls['alertmanager']}/api/v2/alerts"
        ]
    finally:
        stack.start("alertmanager")
    wait_resolved(prometheus, "PrometheusNotificationsFailing", timeout=40)
