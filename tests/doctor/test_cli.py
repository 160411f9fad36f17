"""`testboost doctor` as a command: the console script, defaults and SKIP, exit codes, the
table (colours on a terminal only) and --json."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from doctor.checks import CHECKS
from doctor.cli import DEFAULT_GRAFANA, DEFAULT_URLS, main
from doctor.context import Context, Options
from doctor.model import Check, Outcome, Result, Status
from doctor.report import RESET, as_json, table
from doctor.shipped import DATASOURCE_UID
from tests.doctor.fake_http import FakeServer

REPO = Path(__file__).resolve().parents[2]
TESTBOOST = REPO / ".venv" / "bin" / "testboost"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def closed_port_url() -> str:
    with FakeServer() as server:
        return server.url


def run_main(*argv: str, out: io.StringIO | None = None) -> tuple[int, str]:
    import argparse

    from doctor.cli import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = out or io.StringIO()
    code = run(parser.parse_args(list(argv)), out)
    return code, out.getvalue()


def test_console_script_is_installed_with_the_subcommand() -> None:
    done = subprocess.run(
        [str(TESTBOOST), "doctor", "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    for flag in (
        "--api",
        "--prometheus",
        "--alertmanager",
        "--grafana",
        "--grafana-token",
        "--grafana-user",
        "--metrics-token",
        "--otlp-agent",
        "--export-interval",
        "--jaeger",
        "--trace-service",
        "--json",
        "--stack",
        "--api-key",
    ):
        assert flag in done.stdout


def test_every_option_says_what_it_is_and_its_default() -> None:
    import argparse

    from doctor.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = [a for a in parser._actions if a.dest != "help"]
    assert len(options) == 18
    for action in options:
        assert action.help and "(default: " in action.help, action.option_strings


def test_help_names_the_credentials_it_reads_never_shows_them() -> None:
    secrets = {
        "TESTBOOST_GRAFANA_TOKEN": "s3cret-token",
        "GF_ADMIN_PASSWORD": "s3cret-password",
        "TESTBOOST_API_KEY": "s3cret-key",
        "TESTBOOST_METRICS_TOKEN": "s3cret-metrics",
    }
    done = subprocess.run(
        [str(TESTBOOST), "doctor", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **secrets},
    )
    assert done.returncode == 0
    assert "s3cret" not in done.stdout
    assert all(f"${name}" in done.stdout for name in secrets)


def test_defaults_are_the_compose_ports_and_grafana_is_opt_in() -> None:
    assert DEFAULT_URLS == {
        "api": "http://127.0.0.1:8000",
        "prometheus": "http://127.0.0.1:9090",
        "alertmanager": "http://127.0.0.1:9093",
    }
    assert DEFAULT_GRAFANA == "http://127.0.0.1:3000"
    code, out = run_main("--api", "", "--prometheus", "", "--alertmanager", "", "--json")
    document = json.loads(out)
    assert code == 0 and document["ok"] is True
    assert document["summary"] == {"pass": 0, "warn": 0, "fail": 0, "skip": len(CHECKS)}
    assert {c["detail"] for c in document["checks"] if c["component"] == "grafana"} == {
        "no --grafana URL given"
    }


def test_bare_grafana_flag_means_the_default_port() -> None:
    import argparse

    from doctor.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--grafana"]).grafana == DEFAULT_GRAFANA
    assert parser.parse_args([]).grafana is None


def test_a_failure_exits_1_and_names_the_component_in_json() -> None:
    url = closed_port_url()
    code, out = run_main(
        "--api", "", "--prometheus", "", "--alertmanager", url, "--timeout", "2", "--json"
    )
    document = json.loads(out)
    assert code == 1 and document["ok"] is False
    failed = [c for c in document["checks"] if c["status"] == "FAIL"]
    assert {c["component"] for c in failed} == {"alertmanager"}
    assert all(c["hint"].startswith("Start Alertmanager") for c in failed)
    assert document["urls"]["alertmanager"] == url


def test_table_is_plain_off_a_terminal_and_coloured_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    args = ("--api", "", "--prometheus", "", "--alertmanager", closed_port_url(), "--timeout", "2")
    _, plain = run_main(*args)
    assert "\033[" not in plain
    assert plain.splitlines()[0].split() == ["STATUS", "COMPONENT", "CHECK", "DETAIL"]
    assert plain.count("fix: Start Alertmanager") == 2  # under the failure, and its cause
    skipped = len(CHECKS) - 1  # Alertmanager's other checks: it is down
    assert (
        f"0 passed, 0 warned, 1 failed, {skipped} skipped — FAILED: alertmanager ready\n" in plain
    )
    assert "cause: alertmanager is down (" in plain and "4 check(s) skipped; fix: Start" in plain
    _, coloured = run_main(*args, out=Terminal())
    assert "\033[1;31mFAIL" + RESET in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    _, no_color = run_main(*args, out=Terminal())
    assert "\033[" not in no_color


def test_a_warning_is_not_a_failure() -> None:
    check = Check("api", "a check", "do this", lambda _: Outcome(True, "look", warning=True))
    result = check.run(Context(Options(api="http://127.0.0.1:1")))
    assert result.status is Status.WARN and result.hint == ""
    text = table([result])
    assert "fix:" not in text
    assert text.rstrip().endswith(
        "0 passed, 1 warned, 0 failed, 0 skipped — OK, with warnings: api a check"
    )
    assert json.loads(as_json([result], {}))["ok"] is True


def test_export_interval_is_positive_seconds() -> None:
    import argparse

    from doctor.cli import add_arguments, options_from

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from(parser.parse_args([])).export_interval == 15.0
    assert options_from(parser.parse_args(["--export-interval", "1"])).export_interval == 1.0
    with pytest.raises(SystemExit):
        parser.parse_args(["--export-interval", "0"])


def test_table_columns_line_up() -> None:
    check = Check("api", "a check", "do this", lambda _: Outcome(True, "fine"))
    other = Check("prometheus", "another check", "do that", lambda _: Outcome(False, "bad"))
    text = table([Result(check, Status.PASS, "fine"), Result(other, Status.FAIL, "bad", "do that")])
    lines = text.splitlines()
    assert lines[1].index("a check") == lines[2].index("another check")
    assert lines[3].strip() == "fix: do that"


def test_grafana_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBOOST_GRAFANA_TOKEN", "from-env")
    routes = {
        "/api/health": (200, {"database": "ok", "version": "11.2.0"}),
        f"/api/datasources/uid/{DATASOURCE_UID}/health": (401, {"message": "Unauthorized"}),
    }
    with FakeServer(routes) as grafana:
        run_main("--api", "", "--prometheus", "", "--alertmanager", "", "--grafana", grafana.url)
    assert {h.get("Authorization") for p, h in grafana.requests if p != "/api/health"} == {
        "Bearer from-env"
    }


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "doctor", "--api", "", "--prometheus", "", "--alertmanager", ""],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert f"0 passed, 0 warned, 0 failed, {len(CHECKS)} skipped — OK" in done.stdout


def test_options_default_to_nothing_checked() -> None:
    assert Options().api is None and main is not None


def test_a_credential_that_begins_with_a_dash_is_given_with_equals() -> None:
    """token_urlsafe keys begin with '-' once in 64; argparse reads `--api-key -k…` as two
    options (a CI run failed so), and the description says to write `--api-key=-k…`."""
    import argparse

    from doctor.cli import DESCRIPTION, add_arguments, options_from

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = options_from(parser.parse_args(["--api-key=-k3y", "--metrics-token=-t0k"]))
    assert (options.api_key, options.metrics_token) == ("-k3y", "-t0k")
    assert DESCRIPTION is not None and "--api-key=-k" in DESCRIPTION
