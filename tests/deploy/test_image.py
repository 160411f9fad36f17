"""The API image built from our Dockerfile (on the stand-in for python:3.11-slim), run as a
user would: with only TESTBOOST_API_KEY set it serves /health, as a non-root user, and Docker
reports it healthy; without the key it refuses to start, in one line."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from devstack.processes import free_port
from tests.deploy.docker import REPO, STANDINS, docker, ok

pytestmark = pytest.mark.docker

IMAGE = "testboost-image-test:latest"


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    base = STANDINS["TESTBOOST_PYTHON_IMAGE"]
    ok(docker("build", "-q", "--build-arg", f"PYTHON_IMAGE={base}", "-t", IMAGE, ".", cwd=REPO))
    yield IMAGE
    docker("image", "rm", IMAGE)


def test_the_image_serves_health_with_only_the_key(image: str) -> None:
    port = free_port()
    key = secrets.token_hex(16)
    container = ok(
        docker("run", "-d", "-e", f"TESTBOOST_API_KEY={key}", "-p", f"127.0.0.1:{port}:8000", image)
    ).strip()
    try:
        deadline = time.monotonic() + 90
        while True:
            state = json.loads(ok(docker("inspect", "-f", "{{json .State}}", container)))
            if state["Health"]["Status"] == "healthy":
                break
            assert state["Running"], ok(docker("logs", container))
            assert time.monotonic() < deadline, state
            time.sleep(1)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"
        api = f"http://127.0.0.1:{port}/api/v2/sessions"
        assert httpx.get(api, timeout=5).status_code == 401
        assert httpx.get(api, headers={"X-API-Key": key}, timeout=5).status_code == 200
        uid = ok(docker("exec", container, "id", "-u")).strip()
        assert uid == "10001"
    finally:
        docker("rm", "-f", container)


def test_without_a_key_the_image_refuses_in_one_line(image: str) -> None:
    result = docker("run", "--rm", image, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "TESTBOOST_API_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_image_runs_as_the_chart_runs_it(image: str) -> None:
    """charts/testboost's restricted pod: a read-only root file system with only /tmp
    writable, uid 10001, no capabilities, no privilege escalation; its command with two
    workers (their shared metrics directory goes under /tmp). SQLite in /tmp stands in for
    the PostgreSQL the chart requires."""
    port = free_port()
    key = secrets.token_hex(16)
    container = ok(
        docker(
            "run",
            "-d",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--user",
            "10001:10001",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "-e",
            f"TESTBOOST_API_KEY={key}",
            "-e",
            "TESTBOOST_DATABASE_URL=sqlite:////tmp/testboost.db",
            "-p",
            f"127.0.0.1:{port}:8000",
            image,
            *("testboost", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"),
        )
    ).strip()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            state = json.loads(ok(docker("inspect", "-f", "{{json .State}}", container)))
            assert state["Running"], ok(docker("logs", container))
            assert time.monotonic() < deadline, ok(docker("logs", container))
            time.sleep(1)
        headers = {"X-API-Key": key}
        session = {"session_type": "test_generation", "project_path": "/p"}
        created = httpx.post(f"{base}/api/v2/sessions", json=session, headers=headers)
        assert created.status_code == 201, created.text
        # The worker that answers may not be the one that served the request: the other's
        # counts arrive with its next publication, at most a second later (shared via /tmp).
        deadline = time.monotonic() + 10
        while True:
            metrics = httpx.get(f"{base}/metrics", timeout=5)
            assert metrics.status_code == 200, metrics.text
            if 'path="/api/v2/sessions",status="201"' in metrics.text:
                break
            assert time.monotonic() < deadline, metrics.text[-2000:]
            time.sleep(0.5)
        logs = docker("logs", container)
        assert "Read-only file system" not in logs.stdout + logs.stderr
    finally:
        docker("rm", "-f", container)
