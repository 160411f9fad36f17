"""The built wheel, installed in a clean virtualenv and run from an empty directory: every
`testboost` command starts (no source checkout, no devstack), the API creates its schema from
the migrations the wheel carries and serves, and `testboost doctor` checks it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.processes import free_port
from tests.deploy.conftest import REPO, Installed

HEAD = max(p.name.split("_", 1)[0] for p in (REPO / "app/migrations/versions").glob("0*.py"))


@pytest.mark.parametrize(
    "argv",
    [
        ["testboost", "--help"],
        ["testboost", "serve", "--help"],
        ["testboost", "doctor", "--help"],
        ["testboost", "stack", "--help"],
    ],
    ids=" ".join,
)
def test_every_command_starts(installed: Installed, argv: list[str]) -> None:
    result = installed.run(*argv)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "usage: testboost" in result.stdout


@pytest.mark.parametrize("argv", [["stack"], ["stack", "up", "--push"]], ids=" ".join)
def test_stack_says_it_needs_a_checkout(installed: Installed, argv: list[str]) -> None:
    result = installed.run("testboost", *argv)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "testboost stack: it runs the local stack from a source checkout of TestBoost "
        "(`make stack` there); this installation has no devstack package"
    ]


def test_the_code_is_the_installed_copy(installed: Installed) -> None:
    probe = (
        "import importlib.util, app, cli, doctor, telemetry\n"
        "print(*(m.__file__ for m in (app, cli, doctor, telemetry)))\n"
        "print(importlib.util.find_spec('devstack'))\n"
    )
    result = installed.run("python", "-c", probe)
    assert result.returncode == 0, result.stderr
    files, devstack = result.stdout.splitlines()
    assert all("/site-packages/" in f for f in files.split()), files
    assert devstack == "None"


@pytest.fixture(scope="module")
def served(installed: Installed) -> Iterator[tuple[str, Path]]:
    """`testboost serve` from the wheel on a new SQLite file; its URL and the database."""
    database = installed.workdir / "var" / "testboost.db"
    port = free_port()
    log = (installed.workdir / "serve.log").open("w")
    process = subprocess.Popen(
        [installed.bin("testboost"), "serve", "--port", str(port)],
        cwd=installed.workdir,
        env=installed.env | {"TESTBOOST_DATABASE_URL": f"sqlite:///{database}"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (installed.workdir / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (installed.workdir / "serve.log").read_text()
            time.sleep(0.2)
        yield url, database
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_serve_creates_the_schema_from_the_wheel(served: tuple[str, Path]) -> None:
    url, database = served
    with sqlite3.connect(database) as db:
        (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert version == HEAD
    assert {"sessions", "steps", "alerts"} <= tables
    created = httpx.post(
        f"{url}/api/v2/sessions",
        json={"session_type": "test_generation", "project_path": "/demo"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert httpx.get(f"{url}/api/v2/sessions/{created.json()['id']}").status_code == 200
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert "testboost_http_request_duration_seconds_bucket" in metrics


def test_doctor_checks_the_served_api(installed: Installed, served: tuple[str, Path]) -> None:
    url, _ = served
    result = installed.run(
        "testboost", "doctor", "--api", url, "--prometheus", "", "--alertmanager", "", "--json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["check"]: c["status"] for c in json.loads(result.stdout)["checks"]}
    assert checks["/health"] == "PASS"
    assert checks["catalog families and labels"] == "PASS"
