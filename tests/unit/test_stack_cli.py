"""`testboost stack` over a recorded stack, with stand-in processes (`sleep`) instead of the
real components: what `up` refuses, what `status` prints, and the commands its hints print."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cli import HINTS, _port_rows, _record, main
from devstack.processes import Process, free_port
from devstack.stack import Stack, StackConfig
from doctor.local_stack import program, state_file


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A stack recorded in tmp_path/var/stack (pull mode, no traces; free ports), each
    component a running `sleep`; the current directory is tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / ".venv" / "bin" / "testboost")])
    for name in list(os.environ):
        if name.startswith("TESTBOOST_"):
            monkeypatch.delenv(name)
    stack = Stack(StackConfig(workdir=tmp_path / "var" / "stack", mode="push", traces=True))
    for name in stack.components:
        stack.processes[name] = Process.spawn(
            name, ["sleep", "60"], {}, stack.log(name), cwd=tmp_path
        )
    stack.workdir.mkdir(parents=True, exist_ok=True)
    _record(stack)
    yield stack
    for process in stack.processes.values():
        process.stop()


def test_up_refuses_other_settings_than_the_recorded_stacks(
    recorded: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--traces", "--fast", "--workers", "2"]) == 1
    error = capsys.readouterr().err
    assert error == (
        "error: the stack in var/stack runs no --fast, --workers 1, not --fast, --workers 2 as "
        "asked; stop it first: `.venv/bin/testboost stack down`\n"
    )


def test_up_refuses_push_mode_over_a_recorded_pull_stack(
    recorded: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    state = json.loads(state_file(recorded.workdir).read_text())
    state["mode"] = "pull"
    state_file(recorded.workdir).write_text(json.dumps(state))
    assert main(["up", "--push", "--traces"]) == 1
    assert "runs pull mode, not push mode as asked; stop it first" in capsys.readouterr().err


def test_a_bare_up_takes_the_recorded_settings(
    recorded: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the doctor's "start it again" fix runs: no option, so nothing asked differs; nor
    do the tests' variables the Makefile exports (they never reach the API)."""
    monkeypatch.setenv("TESTBOOST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@db/x")
    assert main(["up"]) == 1
    assert "a local stack is already running" in capsys.readouterr().err


def test_up_refuses_a_port_other_than_the_recorded_one(
    recorded: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    port = recorded.ports["api"] + 1
    assert main(["up", "--push", "--traces", f"--api-port={port}"]) == 1
    assert f"runs API on port {recorded.ports['api']}, not on port {port} as asked" in (
        capsys.readouterr().err
    )


def test_up_with_the_recorded_settings_says_it_already_runs(
    recorded: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--push", "--traces", "--api-port=0"]) == 1  # 0: any port
    assert "a local stack is already running" in capsys.readouterr().err


def test_up_refuses_a_changed_testboost_variable(
    recorded: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBOOST_LLM_SIM_ERROR_RATIO", "0.3")
    assert main(["up", "--push", "--traces"]) == 1
    assert "runs TESTBOOST_LLM_SIM_ERROR_RATIO as set when it started, not as set in this" in (
        capsys.readouterr().err
    )


def test_up_refuses_a_recorded_port_its_offset_does_not_give(
    recorded: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stack recorded before the ports were pinned has its other ports elsewhere."""
    state = json.loads(state_file(recorded.workdir).read_text())
    state["ports"]["otel-collector-health"] = health = recorded.ports["otel-collector"] + 100
    state_file(recorded.workdir).write_text(json.dumps(state))
    port = recorded.ports["otel-collector"]
    assert main(["up", "--push", "--traces", f"--otel-collector-port={port}"]) == 1
    assert f"runs otel-collector-health on port {health}, not on port {port + 3} as asked" in (
        capsys.readouterr().err
    )


def test_status_shows_every_port_in_aligned_columns(
    recorded: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["status"])  # 1: nothing answers its readiness check
    lines = capsys.readouterr().out.splitlines()
    components = [line for line in lines if not line.startswith("   ")]
    assert [line.split()[0] for line in components] == [
        "api",
        "prometheus",
        "alertmanager",
        "otel-collector",
        "jaeger",
    ]
    shown = [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", "\n".join(lines))]
    assert sorted(shown) == sorted(recorded.ports.values())

    def starts(pattern: str, lines: list[str]) -> set[int]:
        return {match.start() for line in lines if (match := re.search(pattern, line))}

    assert len(starts(r"running", components)) == len(starts(r"pid \d", components)) == 1, lines
    assert len(starts(r"(http://)?127\.0", lines)) == 1, lines  # every address, one column
    # Pages as URLs; the collector's OTLP receiver and gRPC ports as host:port.
    not_pages = [
        "otel-collector",
        "otel-collector-grpc",
        "jaeger-query-grpc",
        "jaeger-otlp",
        "jaeger-otlp-http",
    ]
    bare = re.findall(r"(?<!//)127\.0\.0\.1:(\d+)", "\n".join(lines))
    assert sorted(map(int, bare)) == sorted(recorded.ports[name] for name in not_pages)


def test_up_prints_every_port_under_its_component() -> None:
    stack = Stack(
        StackConfig(
            workdir=Path("unused"),
            mode="push",
            traces=True,
            api_port=8000,
            prometheus_port=9090,
            alertmanager_port=9093,
            otel_collector_port=4318,
            jaeger_port=16686,
        )
    )
    rows = _port_rows(stack, {**HINTS, "prometheus": "targets /targets"})
    assert [row[:2] for row in rows] == [
        ["API", "http://127.0.0.1:8000"],
        ["Prometheus", "http://127.0.0.1:9090"],
        ["Alertmanager", "http://127.0.0.1:9093"],
        ["Collector", "127.0.0.1:4318"],  # OTLP in: no page
        ["", "127.0.0.1:4317"],
        ["", "http://127.0.0.1:4319/metrics"],
        ["", "http://127.0.0.1:4320/metrics"],
        ["", "http://127.0.0.1:4321/status"],
        ["Jaeger", "http://127.0.0.1:16686"],
        ["", "127.0.0.1:16685"],
        ["", "127.0.0.1:16687"],
        ["", "127.0.0.1:16688"],
        ["", "http://127.0.0.1:16689/status"],
    ]
    assert all(row[2] for row in rows)  # every port says what it is


def test_up_names_a_taken_derived_port_and_its_flag_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    ports = {name: free_port() for name in ("api", "prometheus", "alertmanager", "otel-collector")}
    flags = [f"--{name}-port={port}" for name, port in ports.items()]
    taken = ports["otel-collector"] + 2
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", taken))
        listener.listen()
        assert main(["up", "--push", *flags]) == 1
    assert capsys.readouterr().err == (
        f"error: port {taken} (otel-collector-telemetry = --otel-collector-port +2) is already "
        f"in use on 127.0.0.1: stop what listens there (`ss -ltnp 'sport = :{taken}'`) or move "
        "it with --otel-collector-port\n"
    )
    assert not state_file(tmp_path / "var" / "stack").exists()
    assert not (tmp_path / "var" / "stack" / "logs").exists()  # nothing was started


def test_the_program_is_named_as_this_shell_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / ".venv" / "bin" / "testboost"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script)])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert program() == ".venv/bin/testboost"
    monkeypatch.setattr(sys, "argv", [".venv/bin/testboost"])  # as `make stack` runs it
    assert program() == ".venv/bin/testboost"
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")  # an activated venv
    assert program() == "testboost"
    monkeypatch.setattr(sys, "argv", [str(script)])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # outside the current directory: the whole path
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert program() == str(script)
    monkeypatch.setattr(sys, "argv", [str(Path("cli", "__main__.py").resolve())])
    assert program().endswith(" -m cli")
    monkeypatch.setattr(sys, "argv", [".venv/bin/pytest"])  # another program: the usual name
    assert program() == "testboost"


def test_help_shows_every_default_and_no_none(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["up", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text
    assert "API's port (default: 8000; its other ports follow it)" in text
    assert "API worker processes (default: 1)" in text
