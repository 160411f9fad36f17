"""The API as a real `testboost serve` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from devstack.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


class ApiProcess:
    def __init__(self, env: dict[str, str], workers: int = 1, port: int | None = None) -> None:
        self.port = port or free_port()
        # The tests read /metrics as a 1 s scraper would: a new series shows zero for 2 s
        # (telemetry/series_start.py), not the production 30 s.
        self.env = {**os.environ, "OTEL_METRIC_EXPORT_INTERVAL": "1000", **env}
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: nobody reads while the server runs, and a full pipe blocks it.
        self.log = tempfile.NamedTemporaryFile(prefix="testboost-api-", suffix=".log")  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ApiProcess:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"API exited at start-up:\n{self.output}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"API not healthy after {timeout}s:\n{self.output}")

    @property
    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> float:
        """Signal the server and wait for it to exit; returns how long that took."""
        assert self.process is not None
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return time.monotonic() - started

    def __enter__(self) -> ApiProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop(signal.SIGKILL)
