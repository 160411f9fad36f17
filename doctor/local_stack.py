"""`testboost doctor --stack [WORKDIR]`: what the doctor reads of a local stack, so that a bare
`testboost doctor --stack` checks it with no URL typed.

`testboost stack up` (devstack/, a source checkout's tool) records the stack in
<workdir>/state.json and keeps the API key in <workdir>/secrets/. The doctor reads that record as
data: the stack writes a section for it (`Recorded.to_state()`, under "doctor") with the URLs,
the API's metrics token and export interval, in push mode the collector's health URL, and with
traces Jaeger's query API. This module owns that format, so an installed doctor (wheel, image)
needs nothing of devstack.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "API_KEY_SECRET",
    "DEFAULT_WORKDIR",
    "NoStack",
    "Recorded",
    "command",
    "log_file",
    "read",
    "shown",
    "state_file",
    "up_command",
]

DEFAULT_WORKDIR = Path("var") / "stack"
STATE_FILE = "state.json"
SECTION = "doctor"
# The secret's name in compose and in <workdir>/secrets/: the key Alertmanager sends.
API_KEY_SECRET = "testboost-api-key"


class NoStack(Exception):
    """Nothing usable recorded where `--stack` points; the message says what to do."""


@dataclass(frozen=True)
class Recorded:
    """A local stack as recorded: what the doctor checks it with."""

    workdir: Path
    api_key: str | None  # None: no key file (a hand-made state)
    mode: str  # "pull" or "push"
    api: str
    prometheus: str
    alertmanager: str
    otlp_agent: str | None  # push mode: the collector's health URL
    jaeger: str | None  # with traces: Jaeger's query API
    metrics_token: str | None
    export_interval: float  # seconds, the API's OTEL_METRIC_EXPORT_INTERVAL
    up_options: str = ""  # `stack up`'s options that start it again as it runs ("--push ...")

    def to_state(self) -> dict[str, Any]:
        """The section the stack writes into state.json (the key stays in its file)."""
        section = asdict(self)
        del section["workdir"], section["api_key"]
        return section


def read(workdir: Path) -> Recorded:
    workdir = workdir.resolve()
    path = state_file(workdir)
    if not path.is_file():
        raise NoStack(
            f"no local stack recorded in {shown(path)}: start one with "
            f"`{up_command(workdir)}`, or give the URLs (--api, --prometheus, --alertmanager)"
        )
    key_file = workdir / "secrets" / API_KEY_SECRET
    api_key = key_file.read_text().strip() if key_file.is_file() else None
    try:
        section = json.loads(path.read_text())[SECTION]
        section.setdefault("jaeger", None)  # recorded before the doctor checked Jaeger
        section.setdefault("up_options", "")  # recorded before its fixes repeated them
        expected = {f.name for f in fields(Recorded)} - {"workdir", "api_key"}
        if set(section) != expected:
            raise ValueError(f"fields {sorted(section)}, expected {sorted(expected)}")
        section["export_interval"] = float(section["export_interval"])
        recorded = Recorded(workdir=workdir, api_key=api_key, **section)
    except (ValueError, KeyError, TypeError) as exc:
        raise NoStack(
            f"{shown(path)} is not a stack state this version reads ({type(exc).__name__}: "
            f"{exc}): stop it with `{command('down', workdir)}` and start it again"
        ) from None
    return recorded


def state_file(workdir: Path) -> Path:
    return workdir / STATE_FILE


def command(action: str, workdir: Path) -> str:
    """`testboost stack ACTION` as this shell can run it, with --workdir when not the default."""
    suffix = "" if workdir == DEFAULT_WORKDIR.resolve() else f" --workdir {shown(workdir)}"
    return f"{program()} stack {action}{suffix}"


def program() -> str:
    """How to run `testboost` again from here: its name when PATH finds this very entry point,
    else the entry point's path (relative to the current directory when inside it), e.g.
    `.venv/bin/testboost` for `make stack`."""
    script = Path(sys.argv[0])
    if script.name == "__main__.py" and script.parent.name == "cli":  # python -m cli
        return f"{_path(Path(sys.executable))} -m cli"
    if script.name != "testboost":  # called from another program (tests): the documented name
        return "testboost"
    on_path = shutil.which(script.name)
    if on_path and script.exists() and os.path.samefile(on_path, script):
        return script.name
    return _path(script)


def _path(path: Path) -> str:
    """`path` relative to the current directory when inside it, symlinks kept (a venv's python
    is one)."""
    absolute = Path(os.path.abspath(path))
    if absolute.is_relative_to(Path.cwd()):
        return str(absolute.relative_to(Path.cwd()))
    return str(absolute)


def up_command(workdir: Path, options: str = "") -> str:
    """`testboost stack up`, with --workdir when not the default: bare, it starts again whatever
    component of the recorded stack stopped; after `down`, `options` (Recorded.up_options)
    start the same stack again."""
    return command("up", workdir.resolve()) + (f" {options}" if options else "")


def log_file(workdir: Path, process: str) -> str:
    return shown(workdir / "logs" / f"{process}.log")


def shown(path: Path) -> str:
    """`path` relative to the current directory when inside it (shorter to paste)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
