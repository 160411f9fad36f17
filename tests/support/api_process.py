"""The API as a real `testboost serve` process on a free loopback port (devstack.processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from devstack.processes import Process, free_port, start


class ApiProcess:
    def __init__(self, env: dict[str, str], workers: int = 1, port: int | None = None) -> None:
        self.port = port or free_port()
        # The tests read /metrics as a 1 s scraper would: a new series shows zero for 2 s
        # (telemetry/series_start.py), not the production 30 s.
        self.env = {**os.environ, "OTEL_METRIC_EXPORT_INTERVAL": "1000", **env}
        self.workers = workers
        self.server: Process | None = None
        # Removed when this object goes; the server appends to it by name.
        self.log = tempfile.NamedTemporaryFile(prefix="testboost-api-", suffix=".log")  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.server.popen if self.server else None

    @property
    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def start(self, timeout: float = 30) -> ApiProcess:
        argv = [sys.executable, "-m", "cli", "serve", "--port", str(self.port)]
        argv += ["--workers", str(self.workers)]
        self.server = start(
            "api", argv, self.env, Path(self.log.name), f"{self.url}/health", timeout
        )
        return self

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> float:
        """Signal the server's process group, as Ctrl-C does (with --workers N, each worker
        gets it too); SIGKILL after `timeout`, which the caller sees as returncode -9.
        Returns how long it took to exit."""
        assert self.server is not None
        return self.server.stop(sig, timeout)

    def __enter__(self) -> ApiProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop(signal.SIGKILL)
