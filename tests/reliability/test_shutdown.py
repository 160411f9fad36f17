"""SIGTERM during running workflows: state persisted, push exporters flushed, bounded exit."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.support.api_process import ApiProcess
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.waiting import until


def test_sigterm_persists_state_and_flushes_push(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'tb.db'}"
    with OtlpReceiver() as receiver:
        env = {
            "TESTBOOST_DATABASE_URL": database,
            "TESTBOOST_LLM_SIM_LATENCY": "0.4",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            # Longer than the test: only the shutdown flush can deliver the data.
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        }
        api = ApiProcess(env).start()
        ids = [
            httpx.post(
                f"{api.url}/api/v2/sessions",
                json={"session_type": "test_generation", "project_path": "/p"},
            ).json()["id"]
            for _ in range(3)
        ]

        def some_step_done() -> bool:
            steps = httpx.get(f"{api.url}/api/v2/sessions/{ids[0]}/steps").json()
            return any(s["status"] == "completed" for s in steps)

        until(some_step_done, timeout=10, message="a completed step")
        assert receiver.metrics == []
        took = api.stop(signal.SIGTERM, timeout=30)
        # uvicorn finishes its graceful shutdown, then re-raises the signal it received.
        assert api.process is not None and api.process.returncode in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in api.output, api.output
        assert took < 15, f"shutdown took {took:.1f}s"
        print(f"SIGTERM to exit: {took:.2f} s")
        points = receiver.latest_points()
        assert "testboost_llm_calls" in points and "testboost_http_requests" in points
        assert any(span.name == "llm.chat" for span in receiver.spans())

    # Restarted, every session finishes without redoing completed steps.
    with ApiProcess(
        {"TESTBOOST_DATABASE_URL": database, "TESTBOOST_LLM_SIM_LATENCY": "0.01"}
    ) as again:
        for session_id in ids:
            until(
                lambda sid=session_id: (
                    httpx.get(f"{again.url}/api/v2/sessions/{sid}").json()["status"] == "completed"
                ),
                timeout=20,
                message="completed",
            )
