"""Hostile behaviours mixed with normal traffic against `testboost serve --workers 2` (pull, a
shared metrics directory, SQLite): clients that trickle headers, stream bodies over the limit,
send huge header blocks, ask for pages and never read them, deliver large webhook batches,
probe the redirect's host; a neighbour that drops files into the metrics directory; an LLM
provider whose answers are sometimes too slow for the deadline or too large for the cap.
Meanwhile: no 5xx for well-formed requests, every session ends (none stuck `running`), every
counter only grows in every scrape, and the workers' memory stays bounded.

CI runs a short form; `make soak` the long one (TESTBOOST_HOSTILE_SOAK_SECONDS)."""

from __future__ import annotations

import copy
import itertools
import os
import pickle
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.test_webhook import FIRING
from tests.support.api_process import ApiProcess
from tests.support.exposition import Exposition
from tests.support.fake_llm import FakeLLM, Reply, completion
from tests.support.load import rss_mib, run_load
from tests.support.waiting import until

SECONDS = float(os.environ.get("TESTBOOST_HOSTILE_SOAK_SECONDS", "20"))
SESSIONS = 30
LIMITS = {
    "TESTBOOST_HEADER_TIMEOUT": "2",
    "TESTBOOST_BODY_TIMEOUT": "2",
    "TESTBOOST_SEND_TIMEOUT": "2",
    "TESTBOOST_LLM_TIMEOUT": "1.5",
    "TESTBOOST_LLM_MAX_ANSWER_BYTES": "65536",
    "TESTBOOST_LLM_MAX_ATTEMPTS": "6",
    "TESTBOOST_LLM_MAX_RETRY_WAIT": "0",
}


def provider_answer(request: dict[str, Any], calls: itertools.count[int]) -> Any:
    """Every 5th answer too slow for the deadline, every 7th too large for the cap."""
    n = next(calls)
    if n % 5 == 4:
        time.sleep(3)
    if n % 7 == 6:
        return completion("x" * 200_000)
    return completion(f"answer {n}")


def workers_rss(api: ApiProcess) -> float:
    assert api.process is not None
    pid = api.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(rss_mib(int(child)) for child in children)


def raw(api: ApiProcess, payload: bytes, *, hold: float = 0.0, buffer: int = 0) -> None:
    """Send `payload` on a new connection, keep it `hold` seconds unread, close it."""
    with socket.socket() as sock:
        if buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        sock.settimeout(5)
        try:
            sock.connect(("127.0.0.1", api.port))
            sock.sendall(payload)
            time.sleep(hold)
        except OSError:
            pass  # cut off by the server: what these clients earn


def hostile_clients(api: ApiProcess, metrics: Path) -> list[Callable[[], None]]:
    chunk = b"10000\r\n" + b"a" * 65536 + b"\r\n"

    def trickle_headers() -> None:
        with socket.socket() as sock:
            sock.connect(("127.0.0.1", api.port))
            try:
                sock.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
                for _ in range(10):
                    sock.sendall(b"a")
                    time.sleep(0.5)
            except OSError:
                pass

    def oversized_chunked_body() -> None:
        head = (
            b"POST /api/v1/alerts/webhook HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        raw(api, head + chunk * 40)

    def huge_header() -> None:
        raw(api, b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")

    def unread_page() -> None:
        raw(api, b"GET /api/v2/sessions?limit=100 HTTP/1.1\r\nHost: t\r\n\r\n", hold=3, buffer=4096)

    def large_delivery() -> None:
        payload = copy.deepcopy(FIRING)
        template = payload["alerts"][0]
        payload["alerts"] = [{**template, "fingerprint": f"fp{i:04d}"} for i in range(1000)]
        response = httpx.post(f"{api.url}/api/v1/alerts/webhook", json=payload, timeout=60)
        assert response.status_code == 200, response.text
        time.sleep(2)

    def redirect_probe() -> None:
        answer = httpx.get(f"{api.url}/api/v2/sessions/", headers={"Host": "evil.example"})
        assert answer.status_code == 307 and answer.headers["location"].startswith("/")

    dropped = itertools.count()

    def neighbour_files() -> None:
        n = next(dropped)
        (metrics / f"{900000 + n}-1.metrics").write_bytes(pickle.dumps({"n": n}))
        (metrics / f"junk{n}.metrics").write_text("{")
        time.sleep(1)

    return [
        trickle_headers,
        oversized_chunked_body,
        huge_header,
        unread_page,
        large_delivery,
        redirect_probe,
        neighbour_files,
    ]


def test_hostile_soak(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    calls = itertools.count()
    with FakeLLM(default=Reply(body=lambda request: provider_answer(request, calls))) as fake:
        env = {
            "TESTBOOST_DATABASE_URL": f"sqlite:///{tmp_path / 'tb.db'}",
            "TESTBOOST_METRICS_DIR": str(metrics),
            "TESTBOOST_LLM_BASE_URL": fake.base_url,
            **LIMITS,
        }
        with ApiProcess(env, workers=2) as api:
            stop = threading.Event()
            errors: list[str] = []
            scrapes = [0]

            def forever(action: Callable[[], None]) -> None:
                while not stop.is_set():
                    try:
                        action()
                    except Exception as exc:  # an assertion inside a hostile client
                        errors.append(f"{action.__name__}: {exc!r}")
                        return

            def monotonic_counters() -> None:
                previous: dict[tuple[Any, ...], float] = {}
                with httpx.Client(base_url=api.url, timeout=10) as client:
                    while not stop.is_set():
                        answer = client.get("/metrics")
                        if answer.status_code != 200:
                            errors.append(f"/metrics answered {answer.status_code}")
                            return
                        exposition = Exposition(answer.text)
                        scrapes[0] += 1
                        for s in exposition.samples:
                            if s.name.endswith(("_total", "_count", "_sum", "_bucket")):
                                key = (s.name, tuple(sorted(s.labels.items())))
                                if s.value < previous.get(key, 0.0):
                                    errors.append(f"{key} went from {previous[key]} to {s.value}")
                                previous[key] = s.value
                        time.sleep(0.3)

            threads = [
                threading.Thread(target=forever, args=(action,))
                for action in hostile_clients(api, metrics)
            ]
            threads.append(threading.Thread(target=monotonic_counters))
            for thread in threads:
                thread.start()
            created = itertools.count()

            def normal(client: httpx.Client) -> httpx.Response:
                if next(created) < SESSIONS:
                    body = {"session_type": "test_generation", "project_path": "/p"}
                    return client.post("/api/v2/sessions", json=body)
                return client.get("/api/v2/sessions", params={"limit": 20})

            try:
                warm = run_load(api.url, normal, seconds=SECONDS / 3, threads=4)
                rss_warm = workers_rss(api)
                steady = run_load(api.url, normal, seconds=2 * SECONDS / 3, threads=4)
                rss_end = workers_rss(api)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=30)

            def every_session_ended() -> bool:
                page = httpx.get(f"{api.url}/api/v2/sessions", params={"limit": 100}).json()
                return page["total"] == SESSIONS and all(
                    s["status"] in ("completed", "failed") for s in page["items"]
                )

            until(every_session_ended, timeout=120, interval=1, message="every session ended")

    assert errors == []
    assert warm.failures == [] and steady.failures == [], (warm.failures, steady.failures)
    assert steady.count > 50 and scrapes[0] > 10
    assert fake.count > SESSIONS  # the provider's slow and large answers were retried
    assert rss_end - rss_warm < 60, (rss_warm, rss_end)
    print(
        f"hostile soak: {warm.count + steady.count} normal requests, 0 errors, "
        f"p99 {steady.quantile(0.99) * 1000:.0f} ms, {scrapes[0]} scrapes monotonic, "
        f"{fake.count} LLM calls, workers' RSS {rss_warm:.1f} → {rss_end:.1f} MiB"
    )
