"""Push mode with the OTLP endpoint down, then hanging, under load: no failed request, no
latency added, bounded memory, failures logged per export interval, exports resume."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import httpx

from devstack.processes import free_port
from tests.support.api_process import ApiProcess
from tests.support.load import rss_mib, run_load
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.waiting import until

# CI-sized: each phase lasts PHASE_S seconds (the full 60 s form: TESTBOOST_OUTAGE_SECONDS=60).
PHASE_S = float(os.environ.get("TESTBOOST_OUTAGE_SECONDS", "6"))


def hanging_server(port: int, stop: threading.Event) -> threading.Thread:
    """Accepts connections and never answers: the worst collector."""

    def serve() -> None:
        held = []
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(server.accept()[0])
                except TimeoutError:
                    continue
        for connection in held:
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_api_keeps_serving_while_the_collector_is_away(tmp_path: Path) -> None:
    collector_port = free_port()
    env = {
        "TESTBOOST_DATABASE_URL": f"sqlite:///{tmp_path / 'tb.db'}",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    }
    with ApiProcess(env) as api:
        session_id = httpx.post(
            f"{api.url}/api/v2/sessions",
            json={"session_type": "impact_analysis", "project_path": "/p"},
        ).json()["id"]

        def read(client: httpx.Client) -> httpx.Response:
            return client.get(f"/api/v2/sessions/{session_id}")

        assert api.process is not None
        with OtlpReceiver(port=collector_port):  # healthy collector: the baseline
            run_load(api.url, read, seconds=1, threads=4)  # warm-up
            healthy = run_load(api.url, read, seconds=PHASE_S, threads=4)
        rss_before = rss_mib(api.process.pid)
        down = run_load(api.url, read, seconds=PHASE_S, threads=4)
        stop_hanging = threading.Event()
        hanging = hanging_server(collector_port, stop_hanging)
        hung = run_load(api.url, read, seconds=PHASE_S, threads=4)
        stop_hanging.set()
        hanging.join(timeout=5)
        rss_after = rss_mib(api.process.pid)

        print(
            f"collector outage: healthy {healthy.count} req p99"
            f" {healthy.quantile(0.99) * 1000:.1f} ms,"
            f" down {down.count} req p99 {down.quantile(0.99) * 1000:.1f} ms,"
            f" hanging {hung.count} req p99 {hung.quantile(0.99) * 1000:.1f} ms,"
            f" RSS {rss_before:.1f} → {rss_after:.1f} MiB"
        )
        assert down.failures == [] and hung.failures == []
        assert down.count > 100 and hung.count > 100
        # Export runs on the reader's thread: requests never wait for the collector
        # (a 2 s export timeout would show in p99 if they did).
        noise = 2 * healthy.quantile(0.99) + 0.020
        assert down.quantile(0.99) < noise and hung.quantile(0.99) < noise
        # Bounded: metrics are cumulative aggregates (no queue), spans wait in the batch
        # processor's 2,048-span queue, then are dropped. Measured: +12 MiB after 12 s,
        # +14 MiB after 120 s — it fills, then stays.
        assert rss_after - rss_before < 20, (rss_before, rss_after)

        with OtlpReceiver(port=collector_port) as receiver:
            until(
                lambda: "testboost_http_requests" in receiver.latest_points(),
                timeout=20,
                message="exports to resume",
            )
            points = dict(receiver.latest_points())
        served = sum(
            p.as_int or p.as_double
            for attrs, p in points["testboost_http_requests"]
            if attrs["path"] == "/api/v2/sessions/{session_id}"
        )
        # Cumulative counters: nothing counted during the outage was lost.
        assert served >= down.count + hung.count
    failures_logged = api.output.count("Failed to export") + api.output.count("Transient error")
    requests = down.count + hung.count
    # Logged per export attempt (about one a second), not per request.
    assert 0 < failures_logged < 4 * (2 * PHASE_S + 5) < requests, failures_logged
