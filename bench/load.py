"""Load generation: wrk (Debian package `wrk`) pinned to its own core, or, where wrk is missing
(a fresh CI machine), a small threaded keep-alive client with the same result shape. Timings
from the fallback are not comparable with wrk's; it exists so the smoke run exercises the
whole harness anywhere."""

from __future__ import annotations

import http.client
import math
import random
import shutil
import string
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

# wrk calls done() once at the end: one machine-readable line with what we need.
REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""

# Random unmatched paths and random Host headers; stops after `limit` responses.
RANDOM_LUA = """
local chars = "abcdefghijklmnopqrstuvwxyz0123456789"
local limit = %d
local seen = 0
local function rnd(n)
  local t = {}
  for i = 1, n do
    local k = math.random(1, #chars)
    t[i] = chars:sub(k, k)
  end
  return table.concat(t)
end
setup = function(thread) math.randomseed(%d) end
init = function(args) math.randomseed(%d) end
request = function()
  local path = "/" .. rnd(10) .. "/" .. rnd(6) .. "?q=" .. rnd(8)
  return wrk.format("GET", path, { ["Host"] = rnd(12) .. ".example" })
end
response = function(status, headers, body)
  seen = seen + 1
  if seen >= limit then wrk.thread:stop() end
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int  # connection errors and timeouts
    non2xx: int
    p50_ms: float
    p99_ms: float
    tool: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def pinned(cmd: list[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if cpu is not None else cmd


def run(
    url: str,
    seconds: float,
    connections: int,
    *,
    cpu: str | None = None,
    random_limit: int | None = None,
    seed: int = 7,
    junk: bool = False,
) -> LoadResult:
    """GET `url` for `seconds` from `connections` keep-alive connections. With `junk`, random
    unmatched paths with random Host headers instead; `random_limit` (implies junk) also stops
    after that many responses (wrk: that thread stops, wrk still waits out `seconds`)."""
    if random_limit is not None or junk:
        random_limit = random_limit if random_limit is not None else 10**9
    if have_wrk():
        return _wrk(url, seconds, connections, cpu, random_limit, seed)
    return _threaded(url, seconds, min(connections, 8), random_limit, seed)


def _wrk(
    url: str,
    seconds: float,
    connections: int,
    cpu: str | None,
    random_limit: int | None,
    seed: int,
) -> LoadResult:
    script = REPORT_LUA
    if random_limit is not None:
        script = RANDOM_LUA % (random_limit, seed, seed) + script
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        duration = f"{max(1, math.ceil(seconds))}s"
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "-s", lua.name, url]
        done = subprocess.run(
            pinned(cmd, cpu), capture_output=True, text=True, timeout=seconds + 60, check=True
        )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            requests, micros, errors, non2xx, p50, p99 = (int(x) for x in line.split()[1:])
            return LoadResult(requests, micros / 1e6, errors, non2xx, p50 / 1e3, p99 / 1e3, "wrk")
    raise RuntimeError(f"no report from wrk:\n{done.stdout}\n{done.stderr}")


def _threaded(
    url: str, seconds: float, connections: int, random_limit: int | None, seed: int
) -> LoadResult:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    counts = {"errors": 0, "non2xx": 0, "sent": 0}
    lock = threading.Lock()

    def worker(index: int) -> None:
        rng = random.Random(seed + index)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        while time.monotonic() < deadline:
            path, headers = target, {}
            if random_limit is not None:
                with lock:
                    if counts["sent"] >= random_limit:
                        break
                    counts["sent"] += 1
                junk = "".join(rng.choices(string.ascii_lowercase, k=10))
                path, headers = f"/{junk}/{junk[:6]}?q={junk}", {"Host": f"{junk}.example"}
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                with lock:
                    counts["errors"] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - started)
                counts["non2xx"] += not 200 <= status < 300
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=660)
    elapsed = time.monotonic() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else 0

    return LoadResult(
        len(latencies), elapsed, counts["errors"], counts["non2xx"], pct(0.5), pct(0.99), "python"
    )
