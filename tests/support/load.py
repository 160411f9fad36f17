"""A bounded HTTP load from threads, measuring what each request saw."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

# One RSS reading for the benchmarks and the reliability tests alike.
from telemetry.runtime import resident_bytes


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies) + len(self.failures)

    def quantile(self, q: float) -> float:
        return statistics.quantiles(self.latencies, n=100)[int(q * 100) - 1]


def run_load(
    base_url: str,
    request: Callable[[httpx.Client], httpx.Response],
    *,
    seconds: float,
    threads: int = 8,
    ok: Callable[[int], bool] = lambda s: s < 500,
) -> LoadResult:
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    status = request(client).status_code
                    error = None if ok(status) else f"HTTP {status}"
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                elapsed = time.perf_counter() - started
                with lock:
                    if error:
                        result.failures.append(error)
                    else:
                        result.latencies.append(elapsed)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=seconds + 30)
    return result


def rss_mib(pid: int) -> float:
    value = resident_bytes(pid)
    assert value is not None, f"no resident memory for pid {pid}"
    return value / 2**20
