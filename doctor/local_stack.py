"""`testboost doctor --stack [WORKDIR]`: what the doctor reads of a local stack, so that a bare
`testboost doctor --stack` checks it with no URL typed.

`testboost stack up` records the stack in <workdir>/state.json (`devstack.Stack.state()`) and
keeps the API key in <workdir>/secrets/; `Stack.from_state` reads them back, so the doctor
takes what the stack's processes were given from devstack itself: the URLs, the API key, the
API's metrics token and export interval (its environment), and in push mode the collector's
health URL, where devstack waits for it to be ready (`Stack.ready_url`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from devstack.cli import DEFAULT_WORKDIR, command
from devstack.configs import API_KEY_SECRET, StackError
from devstack.stack import Stack

__all__ = ["DEFAULT_WORKDIR", "NoStack", "Recorded", "log_file", "read", "shown", "up_command"]

STATE_FILE = "state.json"
COLLECTOR = "otel-collector"


class NoStack(Exception):
    """Nothing usable recorded where `--stack` points; the message says what to do."""


@dataclass(frozen=True)
class Recorded:
    """A local stack as recorded: what the doctor checks it with."""

    workdir: Path
    mode: str  # "pull" or "push"
    api: str
    prometheus: str
    alertmanager: str
    otlp_agent: str | None  # push mode: the collector's health URL
    api_key: str | None  # None: no key file (an older or hand-made state)
    metrics_token: str | None
    export_interval: float  # seconds, the API's OTEL_METRIC_EXPORT_INTERVAL


def read(workdir: Path) -> Recorded:
    workdir = workdir.resolve()
    path = workdir / STATE_FILE
    if not path.is_file():
        raise NoStack(
            f"no local stack recorded in {shown(path)}: start one with "
            f"`{up_command(workdir)}`, or give the URLs (--api, --prometheus, --alertmanager)"
        )
    key_file = workdir / "secrets" / API_KEY_SECRET
    api_key = key_file.read_text().strip() if key_file.is_file() else None
    try:
        stack = Stack.from_state(json.loads(path.read_text()), api_key=api_key)
        urls = stack.urls
        environment = stack.api_environment()
        recorded = Recorded(
            workdir=workdir,
            mode=stack.config.mode,
            api=urls["api"],
            prometheus=urls["prometheus"],
            alertmanager=urls["alertmanager"],
            otlp_agent=stack.ready_url(COLLECTOR) if COLLECTOR in stack.components else None,
            api_key=api_key,
            metrics_token=environment.get("TESTBOOST_METRICS_TOKEN") or None,
            export_interval=float(environment["OTEL_METRIC_EXPORT_INTERVAL"]) / 1000,
        )
    except (ValueError, KeyError, TypeError, StackError) as exc:
        raise NoStack(
            f"{shown(path)} is not a stack state this version reads ({type(exc).__name__}: "
            f"{exc}): stop it with `{command('down', workdir)}` and start it again"
        ) from None
    return recorded


def up_command(workdir: Path) -> str:
    """`testboost stack up`, with --workdir when not the default: it starts again whatever
    component of the recorded stack stopped."""
    return command("up", workdir.resolve())


def log_file(workdir: Path, process: str) -> str:
    return shown(workdir / "logs" / f"{process}.log")


def shown(path: Path) -> str:
    """`path` relative to the current directory when inside it (shorter to paste)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
