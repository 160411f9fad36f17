"""A compressed day: many concurrent sessions plus steady HTTP load → no error, no leak, and
the pool metrics show the pool saturating and recovering.

CI runs a short form; `make soak` runs the full one (200 sessions, 2 minutes)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import httpx

from tests.support.api_process import ApiProcess
from tests.support.exposition import Exposition
from tests.support.load import rss_mib, run_load
from tests.support.waiting import until

SECONDS = float(os.environ.get("TESTBOOST_SOAK_SECONDS", "12"))
SESSIONS = int(os.environ.get("TESTBOOST_SOAK_SESSIONS", "40"))


def test_soak(tmp_path: Path) -> None:
    env = {
        "TESTBOOST_DATABASE_URL": f"sqlite:///{tmp_path / 'tb.db'}",
        "TESTBOOST_DB_POOL_SIZE": "2",
        "TESTBOOST_DB_MAX_OVERFLOW": "1",
        "TESTBOOST_MAX_CONCURRENT_WORKFLOWS": "8",
        "TESTBOOST_LLM_SIM_LATENCY": "0.05",
    }
    with ApiProcess(env) as api:
        assert api.process is not None
        pool: list[float] = []
        stop = threading.Event()

        def watch_pool() -> None:
            with httpx.Client(base_url=api.url, timeout=10) as client:
                while not stop.is_set():
                    text = client.get("/metrics").text
                    pool.append(Exposition(text).value("testboost_db_connection_pool_size"))
                    time.sleep(0.2)

        watcher = threading.Thread(target=watch_pool)
        watcher.start()
        counter = itertools.count()

        def mixed(client: httpx.Client) -> httpx.Response:
            n = next(counter)
            if n < SESSIONS:
                return client.post(
                    "/api/v2/sessions",
                    json={
                        "session_type": ("test_generation", "impact_analysis")[n % 2],
                        "project_path": f"/repo/{n}",
                    },
                )
            return client.get("/api/v2/sessions", params={"limit": 50})

        warm = run_load(api.url, mixed, seconds=SECONDS / 3, threads=16)
        rss_warm = rss_mib(api.process.pid)
        steady = run_load(api.url, mixed, seconds=2 * SECONDS / 3, threads=16)
        rss_end = rss_mib(api.process.pid)

        def all_done() -> bool:
            page = httpx.get(f"{api.url}/api/v2/sessions", params={"status": "completed"})
            return bool(page.json()["total"] == SESSIONS)

        until(all_done, timeout=120, interval=0.5, message="every session completed")

        def settled() -> bool:
            # The pool drains and the last counts show once their series' hold has passed.
            text = Exposition(httpx.get(f"{api.url}/metrics").text)
            completed = text.value("testboost_workflow_total", status="completed")
            return bool(pool and pool[-1] <= 1 and completed == SESSIONS)

        until(settled, timeout=30, interval=0.5, message="pool drained and counts shown")
        stop.set()
        watcher.join(timeout=15)
        final = Exposition(httpx.get(f"{api.url}/metrics").text)

    assert warm.failures == [] and steady.failures == []
    assert steady.count > 100
    capacity = final.value("testboost_db_connection_pool_max")
    assert capacity == 3
    assert max(pool) == capacity, f"pool never saturated: {sorted(set(pool))}"
    assert pool[-1] <= 1, f"pool did not recover: {pool[-5:]}"
    assert final.value("testboost_workflow_total", status="completed") == SESSIONS
    assert final.value("testboost_active_sessions") == 0
    # Flat after warm-up (allocator noise allowed; a per-request leak would be far larger).
    assert rss_end - rss_warm < 15, (rss_warm, rss_end)
    print(
        f"soak: {warm.count + steady.count} requests, p99 {steady.quantile(0.99) * 1000:.0f} ms,"
        f" RSS {rss_warm:.1f} → {rss_end:.1f} MiB, pool max seen {max(pool):.0f}/{capacity:.0f}"
    )
