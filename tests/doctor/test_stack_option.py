"""`testboost doctor --stack [WORKDIR]` reads the local stack as devstack records it: a
state.json written from a real `Stack` (not started: its ports point at fakes, or at nothing),
and the key file devstack writes. test_stack_e2e.py does the same on stacks started by
`testboost stack up`."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Literal

import pytest

from devstack import Stack, StackConfig
from devstack.configs import write_configs
from doctor.cli import add_arguments, options_from
from doctor.context import Options
from doctor.hints import fields
from tests.doctor.fake_http import FakeServer
from tests.doctor.fake_prometheus import Prometheus
from tests.doctor.test_cli import TESTBOOST, run_main
from tests.doctor.test_prometheus_alertmanager_checks import Alertmanager
from tests.doctor.test_push_checks import COLLECTOR, api, servers

KEY = "recorded-key"


def record(
    workdir: Path,
    mode: Literal["pull", "push"] = "pull",
    fast: bool = False,
    ports: dict[str, int] | None = None,
    **config: Any,
) -> Stack:
    """What `testboost stack up` leaves in `workdir`: its configs and key file, state.json."""
    ports = ports or {}
    stack = Stack(
        StackConfig(
            workdir=workdir,
            mode=mode,
            fast=fast,
            api_key=KEY,
            api_port=ports.pop("api", 0),
            prometheus_port=ports.pop("prometheus", 0),
            alertmanager_port=ports.pop("alertmanager", 0),
            **config,
        )
    )
    stack.ports.update(ports)  # extra ports (the collector's health) are chosen by Stack
    workdir.mkdir(parents=True, exist_ok=True)
    write_configs(workdir, stack.ports, stack.api_key, fast, mode == "push")
    (workdir / "state.json").write_text(json.dumps(stack.state(), indent=2) + "\n")
    return stack


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def options(*argv: str) -> Options:
    return options_from(parse(*argv))


def test_a_pull_stack_gives_its_urls_and_key(tmp_path: Path) -> None:
    stack = record(tmp_path / "stack")
    found = options("--stack", str(tmp_path / "stack"))
    assert (found.api, found.prometheus, found.alertmanager) == (
        stack.urls["api"],
        stack.urls["prometheus"],
        stack.urls["alertmanager"],
    )
    assert found.api_key == KEY
    assert found.otlp_agent is None  # pull mode: no agent
    assert found.export_interval == 15.0
    assert found.stack == (tmp_path / "stack").resolve()


def test_a_fast_push_stack_gives_its_collector_and_export_interval(tmp_path: Path) -> None:
    stack = record(tmp_path / "stack", mode="push", fast=True)
    found = options("--stack", str(tmp_path / "stack"))
    health = stack.ports["otel-collector-health"]
    assert found.otlp_agent == f"http://127.0.0.1:{health}/status"
    assert found.otlp_agent == stack.ready_url("otel-collector")  # devstack's own rule
    assert found.export_interval == 1.0


def test_a_restart_fix_starts_the_same_stack_again(tmp_path: Path) -> None:
    """`down` then a bare `up` would start a pull stack on the default ports: the fix repeats
    the recorded options."""
    stack = record(tmp_path / "stack", mode="push", fast=True, traces=True)
    found = options("--stack", str(tmp_path / "stack"))
    ports = " ".join(f"--{name}-port {stack.ports[name]}" for name in ("api", "prometheus"))
    assert found.stack_up_options.startswith(f"--push --traces --fast {ports} "), found
    restart = fields(found)["restart_stack"]
    assert f"stack down --workdir {stack.workdir}`, then `" in restart
    assert f"stack up --workdir {stack.workdir} --push --traces --fast --api-port " in restart


def test_flags_given_override_what_the_stack_records(tmp_path: Path) -> None:
    stack = record(tmp_path / "stack", mode="push", fast=True)
    found = options(
        *("--stack", str(tmp_path / "stack"), "--api", "http://elsewhere:1"),
        *("--alertmanager", "", "--otlp-agent", "", "--export-interval", "7"),
        *("--api-key", "other"),
    )
    assert found.api == "http://elsewhere:1"
    assert found.prometheus == stack.urls["prometheus"]
    assert found.alertmanager is None and found.otlp_agent is None  # '' skips
    assert (found.export_interval, found.api_key) == (7.0, "other")


def test_the_stacks_metrics_token_comes_before_the_shells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBOOST_METRICS_TOKEN", "from-another-shell")
    monkeypatch.setenv("TESTBOOST_API_KEY", "from-another-shell")
    record(tmp_path / "stack", api_env={"TESTBOOST_METRICS_TOKEN": "the-stacks"})
    found = options("--stack", str(tmp_path / "stack"))
    assert (found.metrics_token, found.api_key) == ("the-stacks", KEY)
    given = options("--stack", str(tmp_path / "stack"), "--metrics-token", "typed")
    assert given.metrics_token == "typed"
    assert options().metrics_token == "from-another-shell"  # no stack: the shell's


def test_bare_stack_means_var_stack_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stack = record(tmp_path / "var" / "stack")
    assert parse("--stack").stack == Path("var/stack")
    assert parse().stack is None
    assert options("--stack").api == stack.urls["api"]


def test_the_recorded_stack_is_checked_with_no_url_typed(tmp_path: Path) -> None:
    """Fakes on the recorded ports: every request goes to the stack's URLs, the key to the
    alert inbox as Alertmanager's webhook presents it, the agent check to the collector's
    health URL."""
    inbox = {"/api/v1/alerts": (200, {"items": [], "total": 0})}
    routes = (Prometheus().routes(), Alertmanager().routes(), COLLECTOR)
    with FakeServer({**api("otlp"), **inbox}) as fake_api, servers(*routes) as urls:
        api_url = fake_api.url
        prometheus, alertmanager, collector = urls
        ports = {
            "api": api_url,
            "prometheus": prometheus,
            "alertmanager": alertmanager,
            "otel-collector-health": collector,
        }
        workdir = tmp_path / "stack"
        stack = record(
            workdir,
            mode="push",
            fast=True,
            ports={name: int(url.rsplit(":", 1)[1]) for name, url in ports.items()},
        )
        code, out = run_main("--stack", str(workdir), "--json")
        _, table = run_main("--stack", str(workdir))
    document = json.loads(out)
    assert code == 0, [c for c in document["checks"] if c["status"] == "FAIL"]
    assert document["urls"] == {
        "api": api_url,
        "prometheus": prometheus,
        "alertmanager": alertmanager,
        "grafana": None,
        "otlp-agent": f"{collector}/status",
        "jaeger": None,  # started without traces
    }
    details = {c["check"]: (c["status"], c["detail"]) for c in document["checks"]}
    assert details["API key accepted"] == ("PASS", "GET /api/v1/alerts with the key: 200")
    assert details["agent answers"][1].startswith(f"{collector}/status answers 200")
    assert details["pushed samples fresh"][1].endswith("(export interval 1 s)")
    assert details["query API answers"] == (
        "SKIP",
        "no Jaeger in the local stack (started without --traces)",
    )
    assert table.startswith(f"Local stack in {workdir}: api {stack.urls['api']}, prometheus ")
    sent = {h.get("Authorization") for path, h in fake_api.requests if path == "/api/v1/alerts"}
    assert sent == {f"Bearer {KEY}"}


def no_stack(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`testboost doctor ...` as typed in a shell whose PATH finds it (an activated venv): its
    hints then name it `testboost`."""
    path = f"{TESTBOOST.parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        [str(TESTBOOST), "doctor", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env={**os.environ, "PATH": path},
    )


def test_nothing_recorded_is_a_one_line_error(tmp_path: Path) -> None:
    done = no_stack("--stack", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "testboost doctor: error: no local stack recorded in var/stack/state.json: start one "
        "with `testboost stack up`, or give the URLs (--api, --prometheus, --alertmanager)\n"
    )
    elsewhere = no_stack("--stack", str(tmp_path / "other"), "--json", cwd=tmp_path)
    assert elsewhere.returncode == 2 and len(elsewhere.stderr.splitlines()) == 1
    assert "no local stack recorded in other/state.json: start one with `testboost stack up " in (
        elsewhere.stderr
    )
    assert "--workdir other`" in elsewhere.stderr


def test_a_state_this_version_cannot_read_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "var" / "stack").mkdir(parents=True)
    (tmp_path / "var" / "stack" / "state.json").write_text('{"mode": "pull"}')
    done = no_stack("--stack", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(
        "testboost doctor: error: var/stack/state.json is not a stack state this version reads"
    )
    assert "`testboost stack down`" in done.stderr


def test_no_stack_in_process_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    code, _ = run_main("--stack", str(tmp_path), out=out)
    assert (code, out.getvalue()) == (2, "")
    assert capsys.readouterr().err.startswith("testboost doctor: error: no local stack recorded")
