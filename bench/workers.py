"""Pull mode with several workers (telemetry/multiprocess.py): what the merge costs.

- throughput: `testboost serve --workers 4` with full pull telemetry against the same with
  OTEL_SDK_DISABLED, interleaved rounds (the other server paused), one load generator; the
  workers publish their collections every second meanwhile.
- scrape: the time to answer one scrape with 1,000 HTTP series per worker, from one worker's
  collection (one process) and from one collection merged with three published ones (four
  workers), in process, median of `runs`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource

from bench import load
from bench.variants import OFF, PULL, ROOT, free_port, get, post_json
from telemetry.exposition import PrometheusTextReader, render
from telemetry.instruments import Instruments
from telemetry.metrics_dir import identity
from telemetry.multiprocess import SUFFIX, WorkerMetrics, encode, publishable
from telemetry.series_start import SeriesStart

WORKERS = 4


class Workers:
    """One `testboost serve --workers N`, in a process group of its own (paused as a whole)."""

    def __init__(self, name: str, env: dict[str, str], workers: int, log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = log_dir / f"workers-{name}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cli",
                    "serve",
                    f"--port={self.port}",
                    f"--workers={workers}",
                ],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if get(self.url + "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name}: no /health in {timeout} s; see {self.log}")

    def signal(self, sig: signal.Signals) -> None:
        os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)


def throughput(
    base_env: dict[str, str], rounds: int, seconds: float, connections: int, log_dir: Path
) -> dict[str, Any]:
    servers = {
        "off": Workers("off", {**base_env, **OFF}, WORKERS, log_dir),
        "pull": Workers("pull", {**base_env, **PULL}, WORKERS, log_dir),
    }
    try:
        for server in servers.values():
            server.wait_healthy()
        session = post_json(
            servers["off"].url + "/api/v2/sessions",
            {"session_type": "impact_analysis", "project_path": "/bench"},
        )
        path = f"/api/v2/sessions/{session['id']}"
        runs: dict[str, list[float]] = {name: [] for name in servers}
        for server in servers.values():
            server.signal(signal.SIGSTOP)
        for round_ in range(rounds + 1):  # round 0 warms up
            for name in list(servers)[round_ % 2 :] + list(servers)[: round_ % 2]:
                server = servers[name]
                server.signal(signal.SIGCONT)
                time.sleep(0.3)
                result = load.run(server.url + path, seconds, connections)
                server.signal(signal.SIGSTOP)
                if round_:
                    runs[name].append(result.rps)
        ratios = [p / o for p, o in zip(runs["pull"], runs["off"], strict=True)]
        return {
            "workers": WORKERS,
            "rps": {name: statistics.median(values) for name, values in runs.items()},
            "ratio": statistics.median(ratios),
            "ratios": ratios,
        }
    finally:
        for server in servers.values():
            server.stop()


def _collection(series: int) -> PrometheusTextReader:
    instruments = Instruments("testboost", Resource.get_empty())
    reader = PrometheusTextReader(produce=instruments.collect)
    MeterProvider(metric_readers=[reader])
    for index in range(series):
        instruments.http_request("GET", f"/route/{index}", "200", 0.01 * (index % 7))
    return reader


def scrape(series: int = 1000, runs: int = 7) -> dict[str, Any]:
    own = _collection(series)
    start = SeriesStart(hold_s=0)
    # The other workers' files, named for processes that live while the bench runs.
    others = [subprocess.Popen(["sleep", "600"]) for _ in range(1, WORKERS)]
    with (
        contextlib.ExitStack() as cleanup,
        tempfile.TemporaryDirectory(prefix="bench-workers-") as directory,
    ):
        for other in others:
            cleanup.callback(other.kill)
            payload = encode(publishable(_collection(series).snapshot()))
            (Path(directory) / f"{identity(other.pid)}{SUFFIX}").write_bytes(payload)
        merger = WorkerMetrics(Path(directory))
        timings: dict[str, list[float]] = {"1 worker": [], f"{WORKERS} workers": []}
        sizes: dict[str, int] = {}
        for _ in range(runs):
            for label, merge in (("1 worker", False), (f"{WORKERS} workers", True)):
                began = time.perf_counter()
                data = own.snapshot()
                text = render(start.apply(merger.merged(data) if merge else data))
                timings[label].append(time.perf_counter() - began)
                sizes[label] = len(text)
    medians = {label: statistics.median(values) * 1000 for label, values in timings.items()}
    return {"series_per_worker": series, "ms": medians, "bytes": sizes}


def table(result: dict[str, Any]) -> str:
    lines = []
    if "throughput" in result:
        t = result["throughput"]
        lines += [
            f"Throughput, `testboost serve --workers {t['workers']}`, pull telemetry vs "
            "OTEL_SDK_DISABLED (interleaved rounds, medians):",
            "",
            "| variant | req/s | ratio to off |",
            "|---|---|---|",
            f"| off | {t['rps']['off']:.0f} | 1.000 |",
            f"| pull, merged /metrics | {t['rps']['pull']:.0f} | {t['ratio']:.3f} |",
            "",
        ]
    s = result["scrape"]
    lines += [
        f"Scrape with {s['series_per_worker']:,} HTTP series per worker (collect, merge, render):",
        "",
        "| server | ms per scrape | bytes |",
        "|---|---|---|",
        *(f"| {label} | {ms:.1f} | {s['bytes'][label]:,} |" for label, ms in s["ms"].items()),
    ]
    return "\n".join(lines)
