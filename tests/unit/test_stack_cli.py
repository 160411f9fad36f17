"""`testboost stack` over a recorded stack, with stand-in processes (`sleep`) instead of the
real components: what `up` refuses, what `status` prints, and the commands its hints print."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cli import _record, main
from devstack.processes import Process
from devstack.stack import Stack, StackConfig
from doctor.local_stack import program


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
    assert main(["up", "--traces"]) == 1
    error = capsys.readouterr().err
    assert error == (
        "error: the stack in var/stack runs push mode, not pull mode as asked; "
        "stop it first: `.venv/bin/testboost stack down`\n"
    )


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


def test_status_columns_line_up(recorded: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    main(["status"])  # 1: nothing answers its readiness check
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "api",
        "prometheus",
        "alertmanager",
        "otel-collector",
        "jaeger",
    ]
    for column in (r"running", r"pid \d", r"http://"):
        starts = {re.search(column, line).start() for line in lines}  # type: ignore[union-attr]
        assert len(starts) == 1, (column, lines)


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
