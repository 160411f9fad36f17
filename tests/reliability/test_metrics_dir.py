"""The multi-worker metrics directory under `testboost serve --workers 2`, as a neighbour or an
operator's mistake would meet it: a file dropped there is never run and the scrape answers; a
second server given the same directory is refused in one line, and the first one's counts
stay; a directory others can write, or that cannot be written, is refused at start."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devstack.configs import REPO
from devstack.processes import free_port
from tests.support.api_process import ApiProcess
from tests.support.exposition import Exposition
from tests.support.waiting import until


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TESTBOOST_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--port", str(free_port()), "--workers", "2"],
        cwd=REPO,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def requests_counted(api: ApiProcess) -> float:
    """The session list requests counted (not the scrapes, which each add one)."""
    exposition = Exposition(httpx.get(f"{api.url}/metrics", timeout=10).text)
    return exposition.value("testboost_http_requests_total", path="/api/v2/sessions")


def test_a_dropped_file_never_runs_and_a_second_server_is_refused(tmp_path: Path) -> None:
    directory, marker = tmp_path / "metrics", tmp_path / "ran"
    env = {
        "TESTBOOST_DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
        "TESTBOOST_METRICS_DIR": str(directory),
    }
    with ApiProcess(env, workers=2) as api:
        for _ in range(20):
            assert httpx.get(f"{api.url}/api/v2/sessions", timeout=10).status_code == 200
        until(lambda: requests_counted(api) >= 20, timeout=20, message="20 requests counted")
        for _ in range(4):  # the publishers' second: every worker's count in every scrape
            time.sleep(1.2)
        counted = requests_counted(api)
        assert counted == 20
        for name in ("4242-1", "4243", "dead"):
            (directory / f"{name}.metrics").write_bytes(pickle.dumps(_Payload(marker)))
        for _ in range(10):  # both workers answer scrapes, each reads the dropped files
            response = httpx.get(f"{api.url}/metrics", timeout=10)
            assert response.status_code == 200
        assert not marker.exists()

        other = serve({**env, "TESTBOOST_DATABASE_URL": f"sqlite:///{tmp_path}/other.db"})
        assert other.returncode == 2
        lines = other.stderr.strip().splitlines()
        assert len(lines) == 1 and "is used by another server" in lines[0], other.stderr
        # The first server's counts were neither added to nor removed.
        assert requests_counted(api) == counted
    assert not marker.exists()


def test_a_directory_others_can_write_is_refused_at_start(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    result = serve(
        {
            "TESTBOOST_DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
            "TESTBOOST_METRICS_DIR": str(shared),
        }
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"TESTBOOST_METRICS_DIR={shared}: others can write to it (mode 777); every file there "
        "is read by each scrape: chmod go-w it"
    ]


def test_a_directory_that_cannot_be_made_is_refused_at_start(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = serve(
        {
            "TESTBOOST_DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
            "TESTBOOST_METRICS_DIR": str(blocked / "metrics"),
        }
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create it" in lines[0], result.stderr
