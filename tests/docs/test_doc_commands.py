"""Every command in the documentation, run as written (see doc_blocks.py for the annotations).

Blocks run from the repository root with no TESTBOOST_*/OTEL_* variables inherited, one at a
time, each bounded in time. Blocks that need a running stack, and blocks that start one, use
the compose ports (8000, 9090, 9093, 8429): the test fails, without touching anything, if
something already listens there or a local stack is recorded as running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.deploy.docker import RUN_HERE
from tests.docs.doc_blocks import REPO, Block, all_blocks
from tests.support.waiting import until

BLOCKS = all_blocks()
RUN = [b for b in BLOCKS if b.kind != "not-run"]
STACK_PORTS = (8000, 9090, 9093, 8429)
STACK_DIR = REPO / "var" / "stack"
TESTBOOST = str(REPO / ".venv" / "bin" / "testboost")
BLOCK_TIMEOUT_S = 120
DOCKER_CLI = re.compile(r"(^|[\s;&|(])docker\s", re.M)
# A block may be left unrun only for these reasons, and must then look like what it claims.
NOT_RUN_REASONS = {
    "changes this checkout": lambda code: code.strip() == "git pull",
    "needs Grafana": lambda code: "--grafana" in code or "testboost-grafana" in code,
    # The guide's compose commands, run for real on the Docker engine by tests/deploy (and
    # `config` by tests/monitoring/test_compose.py).
    "make test runs it on Docker": lambda code: all(
        RUN_HERE.fullmatch(line) for line in code.strip().splitlines()
    ),
    "this is the test suite itself": lambda code: code.strip() == "make test",
    # kubectl against a cluster, or a helm command that installs into one (docs/kubernetes.md;
    # the chart itself is checked by tests/kubernetes with the real helm).
    "needs a Kubernetes cluster": lambda code: all(
        re.match(r"(kubectl|helm (install|upgrade|uninstall|test)) ", line)
        for line in code.strip().splitlines()
    ),
    # The same harness run (`python -m bench.run --smoke`), minutes long: run once, there.
    "tests/bench_smoke runs it": lambda code: code.strip() == "make bench-smoke",
}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TESTBOOST_", "OTEL_"))}


def starts_a_stack(block: Block) -> bool:
    return any(s in block.code for s in ("make stack", "stack up", "make run"))


def assert_stack_ports_free() -> None:
    state = STACK_DIR / "state.json"
    assert not state.exists(), f"a local stack is recorded in {state}: `make stack-down` first"
    for port in STACK_PORTS:
        with socket.socket() as sock:
            busy = sock.connect_ex(("127.0.0.1", port)) == 0
        assert not busy, f"port {port} is in use: the documented commands need it"


def stack_down() -> None:
    if (STACK_DIR / "state.json").exists():
        subprocess.run([TESTBOOST, "stack", "down"], cwd=REPO, env=clean_env(), timeout=60)


def run_bash(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )


@contextmanager
def running_stack() -> Iterator[None]:
    """`testboost stack up --fast`, three finished workflows, and `testboost doctor` passing
    (Prometheus has scraped them: every dashboard query has data)."""
    done = subprocess.run(
        [TESTBOOST, "stack", "up", "--fast"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        key = (STACK_DIR / "secrets" / "testboost-api-key").read_text().strip()
        for _ in range(3):
            httpx.post(
                "http://127.0.0.1:8000/api/v2/sessions",
                headers={"X-API-Key": key},
                json={"session_type": "impact_analysis", "project_path": "/docs"},
            ).raise_for_status()

        def healthy() -> bool:
            doctor = subprocess.run(
                [TESTBOOST, "doctor"], cwd=REPO, env=clean_env(), capture_output=True, timeout=60
            )
            return doctor.returncode == 0

        until(healthy, timeout=30, interval=1, message="`testboost doctor` passing on the stack")
        yield
    finally:
        stack_down()


def run_server(block: Block) -> None:
    """Start the block, wait for its URL to answer 200, stop its whole process group."""
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=REPO,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def answers() -> bool:
        assert process.poll() is None, f"exited {process.returncode}"
        try:
            return httpx.get(block.argument, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        until(answers, timeout=BLOCK_TIMEOUT_S, interval=0.5, message=block.argument)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_drain(process)}") from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _drain(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    out, _ = process.communicate(timeout=10)
    return out


@pytest.mark.parametrize("block", RUN, ids=lambda b: b.id)
def test_documented_commands_run_as_written(block: Block) -> None:
    started = time.monotonic()
    if block.kind in ("run-with", "server") or starts_a_stack(block):
        assert_stack_ports_free()
    if block.kind == "server":
        run_server(block)
        return
    try:
        if block.kind == "run-with":
            assert block.argument == "stack", f"unknown run-with: {block.argument}"
            with running_stack():
                done = run_bash(block.code)
        else:
            done = run_bash(block.code)
    finally:
        if starts_a_stack(block):
            stack_down()
    assert done.returncode == 0, (
        f"{block.id} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    assert time.monotonic() - started < BLOCK_TIMEOUT_S + 90


def test_blocks_left_unrun_say_why_and_look_like_it() -> None:
    unrun = [b for b in BLOCKS if b.kind == "not-run"]
    for block in unrun:
        assert block.argument in NOT_RUN_REASONS, f"{block.id}: reason {block.argument!r}"
        assert NOT_RUN_REASONS[block.argument](block.code), f"{block.id}: {block.argument}?"
    # Docker commands act on the compose stack: tests/deploy runs them, with the stand-ins.
    assert not [b.id for b in RUN if DOCKER_CLI.search(b.code)], "a Docker command would run"


def test_enough_documented_commands_run() -> None:
    """Docker blocks are many (the guide's maintenance, run by tests/deploy); the rest must
    stay runnable here."""
    assert len(RUN) >= 10, json.dumps({b.id: b.kind for b in BLOCKS}, indent=1)
