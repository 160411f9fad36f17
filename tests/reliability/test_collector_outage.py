"""The stack's own OpenTelemetry Collector stopped under load (push mode, metrics and traces):
the API answers every request without added latency and with bounded memory, logs export
failures per attempt (not per request), `testboost doctor` names the collector, Prometheus
shows it down; started again, the same API process delivers again, with every count kept.

test_exporter_outage.py covers the endpoint refusing and hanging against a bare API; this
test runs the real chain: API → otelcol → Prometheus (and Jaeger for the traces)."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import httpx
import pytest

from devstack import Stack, StackConfig
from tests.doctor.test_doctor_e2e import API_KEY, agent_health, doctor, failed
from tests.e2e.helpers import SESSIONS, Prometheus
from tests.support.load import rss_mib, run_load
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

# CI-sized: the healthy and the outage phases last PHASE_S seconds each (the full 60 s form:
# TESTBOOST_OUTAGE_SECONDS=60, `make soak`).
PHASE_S = float(os.environ.get("TESTBOOST_OUTAGE_SECONDS", "6"))
HEADERS = {"X-API-Key": API_KEY}
COLLECTOR = "otel-collector"
ROUTE = f"{SESSIONS}/{{session_id}}"
AFTER_RESTART = 25  # 404s sent once the collector is back: a series nothing counted before


def read_ok(status: int) -> bool:
    return status == 200  # every read of the session must succeed, not just avoid a 5xx


def test_api_keeps_serving_while_the_stack_collector_is_down(tmp_path: Path) -> None:
    config = StackConfig(
        workdir=tmp_path / "stack", mode="push", fast=True, traces=True, api_key=API_KEY
    )
    with Stack(config) as stack:
        prometheus = Prometheus(stack.urls["prometheus"])
        api_pid = stack.processes["api"].pid
        created = httpx.post(
            f"{stack.urls['api']}{SESSIONS}",
            json={"session_type": "impact_analysis", "project_path": "/p"},
            headers=HEADERS,
        )
        assert created.status_code == 201, created.text
        path = f"{SESSIONS}/{created.json()['id']}"

        def read(client: httpx.Client) -> httpx.Response:
            return client.get(path, headers=HEADERS)

        warm = run_load(stack.urls["api"], read, seconds=1, threads=4, ok=read_ok)
        healthy = run_load(stack.urls["api"], read, seconds=PHASE_S, threads=4, ok=read_ok)
        rss_before = rss_mib(api_pid)

        log_offset = stack.log("api").stat().st_size
        stack.stop(COLLECTOR)
        down = run_load(stack.urls["api"], read, seconds=PHASE_S, threads=4, ok=read_ok)
        rss_after = rss_mib(api_pid)
        prometheus.wait_value(f'up{{job="{COLLECTOR}"}}', 0, timeout=15)
        assert prometheus.value('up{job="testboost-api"}') == 1  # the API itself is fine
        health = agent_health(stack)
        code, document = doctor(stack, "--otlp-agent", health, "--export-interval", "1")
        broken = failed(document)
        outage_log = stack.log("api").read_bytes()[log_offset:].decode(errors="replace")

        stack.start(COLLECTOR)
        restarted = time.monotonic()
        trace_id = secrets.token_hex(16)
        with httpx.Client(base_url=stack.urls["api"], headers=HEADERS, timeout=10) as api:
            for _ in range(AFTER_RESTART):
                assert api.get(f"{SESSIONS}/no-such-session").status_code == 404
            traced = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
            assert api.get(path, headers=traced).status_code == 200
        prometheus.wait(
            f'sum(testboost_http_requests_total{{path="{ROUTE}", status="404"}})'
            f" == {AFTER_RESTART}",
            timeout=30,
            message="a count made after the restart, in Prometheus",
        )
        flowing_s = time.monotonic() - restarted
        prometheus.wait_value(f'up{{job="{COLLECTOR}"}}', 1, timeout=15)
        # Cumulative counters, same process: what was counted while the collector was away
        # arrives with the first export after it is back.
        served = warm.count + healthy.count + down.count + 1  # and the traced read
        prometheus.wait_value(
            f'sum(testboost_http_requests_total{{path="{ROUTE}", status="200"}})',
            served,
            timeout=15,
        )
        # Traces flow again too (those of the outage beyond the span queue are dropped).
        until(
            lambda: httpx.get(f"{stack.urls['jaeger']}/api/traces/{trace_id}").status_code == 200,
            timeout=30,
            interval=0.5,
            message="a trace made after the restart, in Jaeger",
        )
        assert stack.processes["api"].pid == api_pid and stack.status()["api"]
        prometheus.close()

    failures_logged = outage_log.count("Failed to export") + outage_log.count("Transient error")
    print(
        f"collector outage ({PHASE_S:g} s): healthy {healthy.count} req p99"
        f" {healthy.quantile(0.99) * 1000:.1f} ms, down {down.count} req p99"
        f" {down.quantile(0.99) * 1000:.1f} ms, {len(down.failures)} failed;"
        f" RSS {rss_before:.1f} → {rss_after:.1f} MiB; {failures_logged} export failures"
        f" logged; a count made after the restart in Prometheus {flowing_s:.1f} s after it"
    )
    assert healthy.failures == [] and down.failures == [], down.failures[:5]
    assert down.count > 100
    # Export runs on the SDK's own threads: a request never waits for the collector (one that
    # did would wait seconds: exports retry with back-off for up to 10 s). The margin is for
    # the other processes of the stack sharing the CPU.
    assert down.quantile(0.99) < 2 * healthy.quantile(0.99) + 0.050
    # Metrics are cumulative aggregates (no queue); spans wait in the batch processor's
    # 2,048-span queue, then are dropped: it fills, then stays.
    assert rss_after - rss_before < 20, (rss_before, rss_after)
    # Logged per export attempt (metrics every second, spans every batch), not per request.
    assert 0 < failures_logged < 4 * (PHASE_S + 5) < down.count, failures_logged

    # The doctor names the collector: unreachable at the URL it was given.
    assert code == 1
    agent = broken[("otlp-agent", "agent answers")]
    assert agent["detail"].startswith(f"OTLP agent {health} unreachable"), agent
    assert COLLECTOR in agent["hint"]
    assert not [check for check in broken if check[0] == "api"], broken
