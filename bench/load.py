"""Load generation: wrk (Debian package `wrk`), or where it is missing a small threaded
keep-alive client with the same result, so the smoke run works anywhere (its timings are not
comparable with wrk's)."""

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

# wrk calls done() once at the end: one machine-readable line.
REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""
# Hostile traffic: random unmatched paths and Host headers; a thread stops after `limit`
# responses (wrk still waits out its duration).
JUNK_LUA = """
local chars, limit, seen = "abcdefghijklmnopqrstuvwxyz0123456789", %d, 0
local function rnd(n)
  local t = {}
  for i = 1, n do local k = math.random(1, #chars); t[i] = chars:sub(k, k) end
  return table.concat(t)
end
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

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def tool() -> str:
    return "wrk" if shutil.which("wrk") else "python fallback (timings not comparable)"


def run(
    url: str, seconds: float, connections: int, cpu: str | None, junk_limit: int | None = None
) -> LoadResult:
    """GET `url` for `seconds` over `connections` keep-alive connections; with `junk_limit`,
    about that many hostile requests instead (fewer if `seconds` runs out first)."""
    if not shutil.which("wrk"):
        return _threaded(url, seconds, min(connections, 8), junk_limit)
    script = REPORT_LUA if junk_limit is None else JUNK_LUA % (junk_limit, junk_limit) + REPORT_LUA
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{math.ceil(seconds)}s", "-s", lua.name, url]
        if cpu is not None:
            cmd = ["taskset", "-c", cpu, *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            requests, micros, errors, non2xx, p50, p99 = (int(x) for x in line.split()[1:])
            return LoadResult(requests, micros / 1e6, errors, non2xx, p50 / 1e3, p99 / 1e3)
    raise RuntimeError(f"no report from wrk:\n{done.stdout}\n{done.stderr}")


def _threaded(url: str, seconds: float, connections: int, junk_limit: int | None) -> LoadResult:
    parts = urlsplit(url)
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors, non2xx = [0], [0]
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        path, headers = parts.path, {}
        while time.monotonic() < deadline:
            if junk_limit is not None:
                with lock:
                    if len(latencies) + errors[0] >= junk_limit:
                        break
                junk = "".join(rng.choices(string.ascii_lowercase, k=10))
                path, headers = f"/{junk}/{junk[:6]}?q={junk}", {"Host": f"{junk}.example"}
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                with lock:
                    errors[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - started)
                non2xx[0] += not 200 <= response.status < 300
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()

    def ms(q: float) -> float:
        return latencies[int(q * (len(latencies) - 1))] * 1e3 if latencies else 0.0

    return LoadResult(
        len(latencies), time.monotonic() - started, errors[0], non2xx[0], ms(0.5), ms(0.99)
    )
