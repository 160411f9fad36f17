"""`testboost doctor --stack` on stacks started by `testboost stack up` on free ports (pull,
and push with its collector and traces to Jaeger, as `make stack-push`): it passes with no URL
typed."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.configs import API_KEY_SECRET
from tests.doctor.test_cli import TESTBOOST
from tests.support.waiting import until

FREE = ("--api-port", "0", "--prometheus-port", "0", "--alertmanager-port", "0")
# The shell's TESTBOOST_* settings would reach the stack's API (`stack up` passes them on).
ENV = {k: v for k, v in os.environ.items() if not k.startswith("TESTBOOST_")}


def cli(*argv: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TESTBOOST), *argv], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV
    )


@pytest.fixture
def started(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """`testboost stack up --fast` on free ports in tmp_path/var/stack (the default workdir
    there), pull or push as the test's parameter says; `stack down` afterwards."""
    push = ("--push", "--traces", "--otel-collector-port", "0", "--jaeger-port", "0")
    push = push if request.param == "push" else ()
    done = cli("stack", "up", "--fast", *FREE, *push, cwd=tmp_path)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        yield tmp_path / "var" / "stack"
    finally:
        cli("stack", "down", cwd=tmp_path, timeout=60)


def run_workflows(workdir: Path, count: int = 3) -> None:
    """A little traffic, so that the histogram panels have data."""
    api = json.loads((workdir / "state.json").read_text())["urls"]["api"]
    headers = {"X-API-Key": (workdir / "secrets" / API_KEY_SECRET).read_text().strip()}
    body = {"session_type": "impact_analysis", "project_path": "/p"}
    ids = [
        httpx.post(f"{api}/api/v2/sessions", json=body, headers=headers).json()["id"]
        for _ in range(count)
    ]

    def finished() -> bool:
        return all(
            httpx.get(f"{api}/api/v2/sessions/{i}", headers=headers).json()["status"] == "completed"
            for i in ids
        )

    until(finished, timeout=20, interval=0.2, message="workflows completed")


def doctor_passes(*argv: str, cwd: Path) -> dict[str, Any]:
    """The doctor's JSON once it exits 0 with no warning (Prometheus has scraped the
    workflows: 1 s intervals)."""
    latest: dict[str, Any] = {}

    def passes() -> bool:
        done = cli("doctor", "--json", *argv, cwd=cwd, timeout=60)
        assert done.stderr == ""
        latest["code"], latest["doc"] = done.returncode, json.loads(done.stdout)
        return done.returncode == 0 and latest["doc"]["summary"]["warn"] == 0

    try:
        until(passes, timeout=30, interval=1, message="doctor --stack passing")
    except AssertionError:
        found = [c for c in latest["doc"]["checks"] if c["status"] in ("FAIL", "WARN")]
        raise AssertionError(json.dumps(found, indent=2)) from None
    return latest["doc"]


def details(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["check"]: (c["status"], c["detail"]) for c in document["checks"]}


@pytest.mark.e2e
@pytest.mark.parametrize("started", ["pull"], indirect=True)
def test_bare_stack_checks_the_stack_started_here(started: Path) -> None:
    state = json.loads((started / "state.json").read_text())
    assert state["mode"] == "pull" and state["ports"]["api"] != 8000
    run_workflows(started)
    document = doctor_passes("--stack", cwd=started.parents[1])
    assert {k: v for k, v in document["urls"].items() if v} == {
        name: state["urls"][name] for name in ("api", "prometheus", "alertmanager")
    }
    found = details(document)
    assert found["API key accepted"] == ("PASS", "GET /api/v1/alerts with the key: 200")
    assert {c["component"] for c in document["checks"] if c["status"] == "SKIP"} == {
        "otlp-agent",  # pull mode
        "grafana",  # not part of the local stack
        "jaeger",  # no traces in a pull stack
    }
    assert found["query API answers"] == (
        "SKIP",
        "no Jaeger in the local stack (started without --traces)",
    )


@pytest.mark.e2e
@pytest.mark.parametrize("started", ["push"], indirect=True)
def test_stack_in_push_mode_checks_its_collector(started: Path, tmp_path_factory: Any) -> None:
    state = json.loads((started / "state.json").read_text())
    assert state["mode"] == "push" and state["config"]["fast"] is True
    assert state["config"]["traces"] is True
    health = f"http://127.0.0.1:{state['ports']['otel-collector-health']}/status"
    run_workflows(started)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    document = doctor_passes("--stack", str(started), cwd=elsewhere)
    assert document["urls"]["otlp-agent"] == health
    assert document["urls"]["jaeger"] == state["urls"]["jaeger"]
    found = details(document)
    assert found["agent answers"][0] == "PASS"
    assert found["agent answers"][1].startswith(f"{health} answers 200")
    assert found["pushed samples fresh"][0] == "PASS"
    assert found["pushed samples fresh"][1].endswith("(export interval 1 s)")
    assert found["/metrics reachable"][1].startswith("push mode (OTLP)")
    assert found["the API's traces arrive"][0] == "PASS"
    assert found["the API's traces arrive"][1].startswith("a request the doctor traced")
    assert {c["component"] for c in document["checks"] if c["status"] != "PASS"} == {"grafana"}
