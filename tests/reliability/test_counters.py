"""Counters never go backwards while the process lives, whatever the scrape pattern."""

from __future__ import annotations

import threading
import time

from starlette.testclient import TestClient

from tests.support.exposition import Exposition


def test_counters_only_grow_under_concurrent_load(client: TestClient) -> None:
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            client.get("/api/v2/sessions")
            client.get("/nope")
            client.post(
                "/api/v2/sessions", json={"session_type": "impact_analysis", "project_path": "/p"}
            )

    workers = [threading.Thread(target=traffic) for _ in range(3)]
    for worker in workers:
        worker.start()
    previous: dict[tuple, float] = {}
    scrapes = 0
    deadline = time.monotonic() + 3
    try:
        while time.monotonic() < deadline:
            exposition = Exposition(client.get("/metrics").text)
            scrapes += 1
            for sample in exposition.samples:
                if not sample.name.endswith(("_total", "_count", "_sum", "_bucket")):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                assert sample.value >= previous.get(key, 0.0), key
                previous[key] = sample.value
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
    assert scrapes > 5 and previous
