"""The API variants the harness compares, and the processes that serve them.

Every variant is the same app, served as `testboost serve` serves it (bench/serve.py), on its
own loopback port, pinned to the server core when `taskset` works. They differ only in the
environment (standard OTEL_* variables) and, for the reference variants, in what bench/serve.py
adds to the app.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devstack.processes import free_port
from telemetry.runtime import resident_bytes

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    env: dict[str, str] = field(default_factory=dict)
    needs_sink: bool = False


OFF = {"OTEL_SDK_DISABLED": "true"}
PULL = {"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_TRACES_EXPORTER": "none"}
TRACES_10 = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0.1",
}
# Our telemetry does nothing (no readers, no middleware), the SDK itself stays enabled: the
# reference variants build their own providers, which OTEL_SDK_DISABLED would turn off.
OURS_NONE = {"OTEL_METRICS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none"}

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("off", "telemetry off (OTEL_SDK_DISABLED=true): the baseline", OFF),
        Variant("pull", "full telemetry, pull: every request measured, /metrics", PULL),
        Variant(
            "pull-traces",
            "pull + traces, parentbased_traceidratio 0.1, OTLP/HTTP export",
            {**PULL, **TRACES_10},
            needs_sink=True,
        ),
        Variant(
            "push",
            "full telemetry, push: OTLP/HTTP every 1 s (interval 15 s in production)",
            {
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            },
            needs_sink=True,
        ),
        Variant(
            "otel-stock",
            "OpenTelemetry FastAPIInstrumentor, defaults, metrics only (reference)",
            OURS_NONE,
        ),
        Variant("pfi", "prometheus-fastapi-instrumentator, defaults (reference)", OURS_NONE),
        Variant(
            "floor",
            "hand-written ASGI middleware on prometheus_client, children cached (reference)",
            OURS_NONE,
        ),
    )
}


def taskset_works() -> bool:
    if (os.cpu_count() or 1) < 2:
        return False
    try:
        return subprocess.run(["taskset", "-c", "1", "true"], check=False).returncode == 0
    except OSError:
        return False


def get(url: str, timeout: float = 5, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_json(url: str, payload: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


class Process:
    """A child process with its output in a log file, stopped by its own pid only."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_dir: Path, name: str) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def pause(self) -> None:
        """SIGSTOP: an idle variant's background work (a push export every second, a span
        batch) must not land in another variant's measurement on the shared server core."""
        if self.alive():
            os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class Server(Process):
    def __init__(
        self,
        variant: Variant,
        base_env: dict[str, str],
        log_dir: Path,
        cpu: str | None,
    ) -> None:
        self.variant = variant
        self.port = free_port()
        cmd = [sys.executable, "-m", "bench.serve", variant.name, "--port", str(self.port)]
        if cpu is not None:
            cmd = ["taskset", "-c", cpu, *cmd]
        super().__init__(cmd, {**base_env, **variant.env}, log_dir, variant.name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.output()[-3000:]}")
            try:
                if get(f"{self.url}/health", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not healthy after {timeout}s:\n{self.output()[-3000:]}")


def rss_mib(pid: int) -> float:
    value = resident_bytes(pid)
    if value is None:
        raise RuntimeError(f"no resident memory for pid {pid}")
    return value / 2**20


def make_sink(log_dir: Path, cpu: str | None) -> tuple[Process, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.otlp_sink", "--port", str(port)]
    sink = Process(
        cmd if cpu is None else ["taskset", "-c", cpu, *cmd], dict(os.environ), log_dir, "otlp-sink"
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            get(f"{endpoint}/stats", timeout=1)
            return sink, endpoint
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("OTLP sink did not start")


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
