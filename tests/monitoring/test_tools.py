"""The tool lookup the monitoring tests rely on: a missing binary is an error, not a skip."""

from __future__ import annotations

import subprocess

import pytest

from . import tools

ALL_TOOLS = (
    "prometheus",
    "promtool",
    "prometheus3",
    "promtool3",
    "alertmanager",
    "amtool",
    "otelcol",  # built from source by scripts/build-go-tools.sh
    "jaeger",
    "thanos",
    "helm",  # the same, for the chart's checks (tests/kubernetes)
    "k8s-validate",
    "sloth",  # the same: the SLO rules (monitoring/slo/, tests/monitoring/test_slo.py)
)
# Tools without a --version flag.
VERSION_ARGS = {"helm": ("version", "--short"), "sloth": ("version",)}


def test_missing_tool_raises_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(tools, "TOOLS_BIN", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make tools"):
        tools.tool_path("promtool")


def test_project_tools_win_over_path(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    local, elsewhere = tmp_path / "local", tmp_path / "path"
    for folder in (local, elsewhere):
        folder.mkdir()
        exe = folder / "amtool"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    monkeypatch.setattr(tools, "TOOLS_BIN", local)
    monkeypatch.setenv("PATH", str(elsewhere))
    assert tools.tool_path("amtool") == str(local / "amtool")
    (local / "amtool").unlink()
    assert tools.tool_path("amtool") == str(elsewhere / "amtool")


@pytest.mark.tools
@pytest.mark.parametrize("name", ALL_TOOLS)
def test_installed_tool_runs(name: str) -> None:
    result = tools.run_tool(name, *VERSION_ARGS.get(name, ("--version",)))
    assert result.returncode == 0, result.stderr


@pytest.mark.tools
def test_trixie_versions() -> None:
    """The configs are checked with the versions compose runs (prom/prometheus:v2.53.3,
    prom/alertmanager:v0.28.1)."""
    assert "version 2.53." in tools.run_tool("promtool", "--version").stdout
    assert "version 0.28." in tools.run_tool("amtool", "--version").stdout


@pytest.mark.tools
def test_install_script_is_idempotent_and_reports_each_tool() -> None:
    """A second run (make test always runs `make tools`) downloads nothing."""
    result = subprocess.run(
        [str(tools.REPO / "scripts" / "install-tools.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fetching" not in result.stdout
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == list(ALL_TOOLS)
