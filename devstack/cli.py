"""`testboost stack up|down|status`: the local stack from a shell (what `make stack` runs).

`up` starts the processes detached, records them in <workdir>/state.json and returns; `down`
and `status`, from any shell, act on exactly the processes recorded there.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from devstack.configs import StackError
from devstack.ports import DEFAULT_PORTS, component_ports, owner, page, what
from devstack.processes import find_tool, prometheus_pages
from devstack.stack import COMPONENTS, Stack, StackConfig
from doctor.local_stack import API_KEY_SECRET, DEFAULT_WORKDIR, command, shown, state_file

HINTS = {
    "api": "docs /docs, metrics /metrics, alert inbox /api/v1/alerts",
    "alertmanager": "alerts /#/alerts",
    "otel-collector": "OTLP/HTTP in (POST /v1/metrics, /v1/traces)",
    "jaeger": "no UI in this build (the page says why); traces /api/traces?service=testboost-api",
}
LABELS = {
    "api": "API",
    "prometheus": "Prometheus",
    "alertmanager": "Alertmanager",
    "otel-collector": "Collector",
    "jaeger": "Jaeger",
}


def register(commands: Any) -> None:
    """Add `stack` to the `testboost` subcommands (`commands`: argparse subparsers)."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    stack = commands.add_parser(
        "stack",
        help="run the API, Prometheus and Alertmanager locally (no Docker)",
        description=__doc__.split("\n\n")[0],
    )
    actions = stack.add_subparsers(dest="action", required=True)
    up = actions.add_parser(
        "up",
        help="start the stack in the background and print its URLs",
        description="Start the stack in the background (or restart the components of a "
        "recorded stack that stopped) and print its URLs.",
        formatter_class=formatter,
    )
    # The settings have no default in the namespace (SUPPRESS: absent unless given, and no
    # "(default: None)" in --help): over a running stack, only what is given is asked for, so a
    # bare `up` starts again what stopped, as recorded (StackConfig holds the defaults).
    switch = functools.partial(up.add_argument, action="store_true", default=argparse.SUPPRESS)
    switch("--push", help="push OTLP to our OpenTelemetry Collector, which Prometheus scrapes")
    switch(
        "--remote-write", help="with --push: the collector remote-writes into Prometheus instead"
    )
    switch(
        "--traces",
        help="traces to the collector and Jaeger (without --push the collector carries only "
        "them), and exemplars linking latency buckets to them",
    )
    for name, port in DEFAULT_PORTS.items():
        up.add_argument(
            f"--{name}-port",
            type=int,
            default=argparse.SUPPRESS,
            metavar="PORT",
            help=f"{LABELS[name]}'s port (default: {port}; its other ports follow it)",
        )
    up.add_argument(
        "--workers",
        type=int,
        default=argparse.SUPPRESS,
        help="API worker processes (default: 1)",
    )
    switch("--fast", help="1 s intervals and `for` (to see alerts fire quickly)")
    up.add_argument(
        "--foreground", action="store_true", help="stay attached; Ctrl-C stops the stack"
    )
    restart = actions.add_parser(
        "restart",
        help="stop (if running) and start one component, same ports and configuration",
        formatter_class=formatter,
    )
    restart.add_argument("component", choices=COMPONENTS, help="the component to restart")
    for action in (
        up,
        restart,
        actions.add_parser("down", help="stop what `up` started", formatter_class=formatter),
        actions.add_parser("status", help="is each component running?", formatter_class=formatter),
    ):
        action.add_argument(
            "--workdir",
            type=Path,
            default=DEFAULT_WORKDIR,
            help="where the stack keeps its state, data, logs and configs",
        )
    stack.set_defaults(func=run)


def main(argv: list[str]) -> int:
    """`testboost stack ARGV` (cli/ hands it over)."""
    parser = argparse.ArgumentParser(prog="testboost")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stack", *argv])
    result: int = args.func(args)
    return result


def run(args: argparse.Namespace) -> int:
    try:
        action = {"up": up, "down": down, "status": status, "restart": restart}[args.action]
        return action(args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _recorded(workdir: Path) -> Stack | None:
    path = state_file(workdir)
    if not path.exists():
        return None
    return Stack.from_state(json.loads(path.read_text()), api_key=_api_key(workdir))


def _record(stack: Stack) -> None:
    state_file(stack.workdir).write_text(json.dumps(stack.state(), indent=2) + "\n")


def _api_key(workdir: Path) -> str | None:
    """TESTBOOST_API_KEY if set, else the key of a previous run (stable across restarts)."""
    key = os.environ.get("TESTBOOST_API_KEY")
    if key:
        return key
    previous = workdir / "secrets" / API_KEY_SECRET
    return previous.read_text().strip() if previous.exists() else None


def up(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir.resolve()
    config = _asked(args, workdir)
    recorded = _recorded(workdir)
    if recorded is not None and any(recorded.status().values()):
        _refuse_other_settings(recorded, config, args)
        return _start_stopped(recorded)
    stack = Stack(config)
    started = time.monotonic()
    first = "1 s" if config.fast else "15 s"
    print(
        f"Starting the local stack ({config.mode} mode) in {shown(workdir)}/; it is up once "
        f"Prometheus has the API's first metrics ({first} scrape interval) ...",
        flush=True,
    )
    stack.up(timeout=60)
    _record(stack)
    print(f"Up in {time.monotonic() - started:.1f} s, Prometheus scraping the API:")
    _print_table(_port_rows(stack, _hints(stack)))
    key_file = shown(workdir / "secrets" / API_KEY_SECRET)
    print(f"API key (required on /api/*) is in {key_file}, e.g.")
    print(
        f'  curl -H "X-API-Key: $(cat {key_file})" -H "Content-Type: application/json" \\\n'
        f'       -d \'{{"session_type": "test_generation", "project_path": "/demo"}}\' '
        f"{stack.urls['api']}/api/v2/sessions"
    )
    print(f"Logs: {shown(workdir / 'logs')}/<component>.log   Configs used: {shown(workdir)}/*.yml")
    if args.foreground:
        print("Ctrl-C stops the stack.", flush=True)
        _wait_for_interrupt()
        stack.down()
        state_file(workdir).unlink(missing_ok=True)
        print("Stopped.")
        return 0
    print(
        f"Status: `{command('status', workdir)}`   Stop: `{command('down', workdir)}`   "
        f"Restart one component: `{command('restart', workdir)} COMPONENT`"
    )
    return 0


def _asked(args: argparse.Namespace, workdir: Path) -> StackConfig:
    """The stack `up` is asked for: what is given, StackConfig's defaults for the rest."""
    return StackConfig(
        workdir=workdir,
        mode="push" if _given(args, "push") else "pull",
        push_via="remote-write" if _given(args, "remote_write") else "scrape",
        traces=_given(args, "traces"),
        fast=_given(args, "fast"),
        api_key=_api_key(workdir),
        api_env=_api_env(),
        workers=getattr(args, "workers", 1),
        api_port=_port(args, "api"),
        prometheus_port=_port(args, "prometheus"),
        alertmanager_port=_port(args, "alertmanager"),
        otel_collector_port=_port(args, "otel-collector"),
        jaeger_port=_port(args, "jaeger"),
    )


def _given(args: argparse.Namespace, flag: str) -> bool:
    given: bool = getattr(args, flag, False)
    return given


def _api_env() -> dict[str, str]:
    """The shell's TESTBOOST_* settings, which reach the API (e.g. TESTBOOST_LLM_SIM_ERROR_RATIO),
    but for its key (a file of the stack's) and the tests' own (the Makefile exports
    TESTBOOST_TEST_POSTGRES_URL)."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith("TESTBOOST_")
        and k != "TESTBOOST_API_KEY"
        and not k.startswith("TESTBOOST_TEST_")
    }


def _port(args: argparse.Namespace, name: str) -> int:
    """The port given for component `name` (0: any free one), else its default port."""
    given = _given_port(args, name)
    return DEFAULT_PORTS[name] if given is None else given


def _given_port(args: argparse.Namespace, name: str) -> int | None:
    port: int | None = getattr(args, f"{name.replace('-', '_')}_port", None)
    return port


def _refuse_other_settings(stack: Stack, asked: StackConfig, args: argparse.Namespace) -> None:
    """`up` over a running stack only starts its stopped components, as recorded: asking for
    other settings (an option given, a TESTBOOST_* variable set) is an error rather than
    silently not getting them; what is not given is as recorded."""
    recorded = stack.config
    differ = [
        (_setting(name, getattr(recorded, name)), _setting(name, getattr(asked, name)))
        for name, flag in SETTING_FLAGS.items()
        if hasattr(args, flag) and getattr(recorded, name) != getattr(asked, name)
    ]
    if changed := sorted(k for k, v in asked.api_env.items() if recorded.api_env.get(k) != v):
        differ.append((f"{', '.join(changed)} as set when it started", "as set in this shell"))
    for name in DEFAULT_PORTS:
        port = _given_port(args, name)
        if not port or name not in stack.ports:  # None or 0: any port will do
            continue
        # Its other ports too: a stack recorded before they were pinned has them elsewhere.
        wanted = component_ports(name, port, stack.alertmanagers)
        if moved := [n for n, p in wanted.items() if n in stack.ports and stack.ports[n] != p]:
            label = LABELS[name] if moved[0] == name else moved[0]
            differ.append(
                (f"{label} on port {stack.ports[moved[0]]}", f"on port {wanted[moved[0]]}")
            )
    if differ:
        runs, asked_for = (", ".join(side) for side in zip(*differ, strict=True))
        raise StackError(
            f"the stack in {shown(stack.workdir)} runs {runs}, not {asked_for} as asked; "
            f"stop it first: `{command('down', stack.workdir)}`"
        )


# The StackConfig settings `up` takes, by the flag that sets each.
SETTING_FLAGS = {
    "mode": "push",
    "push_via": "remote_write",
    "traces": "traces",
    "fast": "fast",
    "workers": "workers",
}


def _setting(name: str, value: object) -> str:
    """A StackConfig setting as `up`'s options say it."""
    if name == "mode":
        return f"{value} mode"
    if name == "push_via":
        return "--remote-write" if value == "remote-write" else "no --remote-write"
    if name == "workers":
        return f"--workers {value}"
    return f"--{name}" if value else f"no --{name}"


def _start_stopped(stack: Stack) -> int:
    """`up` on a recorded stack: start the components that stopped, refuse if none did."""
    stopped = [name for name, running in stack.status().items() if not running]
    if not stopped:
        raise StackError(
            f"a local stack is already running (recorded in {shown(state_file(stack.workdir))})"
            f": see `{command('status', stack.workdir)}`, stop it with "
            f"`{command('down', stack.workdir)}`"
        )
    width = max(map(len, stopped))
    for name in stopped:
        print(f"  {name:<{width}}  was stopped: starting it again", flush=True)
        stack.start(name)
        _record(stack)
    print(f"Every component is running again: `{command('status', stack.workdir)}`")
    return 0


def restart(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir.resolve()
    stack = _recorded(workdir)
    if stack is None:
        raise StackError(
            f"no local stack recorded in {shown(state_file(workdir))}: start one with "
            f"`{command('up', workdir)}`"
        )
    name: str = args.component
    if name not in stack.components:
        raise StackError(
            f"this stack has no {name} (its components: {', '.join(stack.components)})"
        )
    stack.stop(name)
    stack.start(name)
    _record(stack)
    process = stack.processes[name]
    print(f"  {name}  restarted, pid {process.pid}, ready at {stack.ready_url(name)}")
    return 0


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


def down(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir.resolve()
    stack = _recorded(workdir)
    if stack is None:
        print(f"No local stack recorded in {shown(state_file(workdir))}: nothing to stop.")
        return 0
    names = list(reversed(stack.processes))
    rows = []
    for name in names:
        process = stack.processes[name]
        was_running = process.alive()
        process.stop()
        rows.append([name, f"pid {process.pid}", "stopped" if was_running else "was not running"])
    _print_table(rows)
    state_file(workdir).unlink()
    print(f"Local stack stopped. Data and logs stay in {shown(workdir)}/.")
    return 0


def status(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir.resolve()
    stack = _recorded(workdir)
    if stack is None:
        print(
            f"No local stack recorded in {shown(state_file(workdir))} "
            f"(`{command('up', workdir)}` starts one)."
        )
        return 1
    running = stack.status()
    hints = _hints(stack)
    rows = []
    with httpx.Client(timeout=2.0) as client:
        for name in _ordered(stack.ports):
            if name not in stack.components:  # another port of the component above
                rows.append(["", "", "", _address(stack, name), what(name)])
                continue
            state = "running" if running[name] else "STOPPED"
            if running[name]:
                try:
                    ok = client.get(stack.ready_url(name)).status_code == 200
                except httpx.HTTPError:
                    ok = False
                state += ", ready" if ok else ", NOT READY"
            rows.append(
                [
                    name,
                    state,
                    f"pid {stack.processes[name].pid}",
                    _address(stack, name),
                    hints.get(name, ""),
                ]
            )
    _print_table(rows)
    return 0 if all(running.values()) else 1


def _hints(stack: Stack) -> dict[str, str]:
    """What each component serves; Prometheus' pages move with its build (its HTTP API, which
    every build serves, when the binary is gone from under a running stack)."""
    try:
        pages = prometheus_pages(find_tool(stack.config.prometheus_binary))
    except StackError:
        pages = "targets /api/v1/targets, alerts /api/v1/alerts"
    return {**HINTS, "prometheus": pages}


def _print_table(rows: list[list[str]]) -> None:
    """Columns as wide as their widest cell, two spaces apart (the last one not padded)."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print(("  " + "  ".join([*cells, row[-1]])).rstrip())


def _ordered(ports: dict[str, int]) -> list[str]:
    """Every port, the API's first, as a user reads it: what they call, then what watches it;
    each component's main port first, then its others."""
    return [
        name
        for component in DEFAULT_PORTS
        for name in sorted(
            (name for name in ports if owner(name) == component), key=lambda n: n != component
        )
    ]


def _address(stack: Stack, name: str) -> str:
    """What a browser opens on a port, as a URL; host:port where there is no page to open
    (the collector's OTLP receivers, gRPC)."""
    if name == "otel-collector":
        return f"127.0.0.1:{stack.ports[name]}"
    if name in stack.components:
        return stack.urls[name]
    path = page(name)
    return (
        f"http://127.0.0.1:{stack.ports[name]}{path}" if path else f"127.0.0.1:{stack.ports[name]}"
    )


def _port_rows(stack: Stack, hints: dict[str, str]) -> list[list[str]]:
    """`up`'s table: every port the stack listens on, under its component."""
    return [
        [LABELS[name], _address(stack, name), hints[name]]
        if name in LABELS
        else ["", _address(stack, name), what(name)]
        for name in _ordered(stack.ports)
    ]
