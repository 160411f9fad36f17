"""The `testboost` command: `serve` runs the API (what `make run` calls); `doctor` checks it and
its monitoring stack (doctor/); `stack` runs that stack as local processes (devstack/, what
`make stack` calls; a source checkout's tool)."""

from __future__ import annotations

import argparse
import sys

from cli import serve

HELP = argparse.ArgumentDefaultsHelpFormatter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testboost", description="TestBoost API tools")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser(
        "serve",
        help="run the API",
        description="Run the API under uvicorn. Settings come from TESTBOOST_* and OTEL_* "
        "variables (docs/configuration.md); a bad setting or an unreachable database stops "
        "start-up with one line.",
        formatter_class=HELP,
    )
    serve.add_arguments(serve_cmd)
    serve_cmd.set_defaults(func=serve.run)
    _register_stack(commands)
    from doctor import DESCRIPTION, add_arguments, run

    doctor_cmd = commands.add_parser(
        "doctor", help="check the API and its monitoring stack", description=DESCRIPTION
    )
    add_arguments(doctor_cmd)
    doctor_cmd.set_defaults(func=run)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def _register_stack(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`testboost stack` where devstack/ is (a source checkout: it runs the repository's
    configs with the binaries `make tools` installs); elsewhere a command that says so."""
    try:
        from devstack.cli import register
    except ImportError:
        stack = commands.add_parser("stack", help="the local stack (from a source checkout)")
        stack.set_defaults(func=_no_stack)
        return
    register(commands)


def _no_stack(_args: argparse.Namespace) -> int:
    print(
        "testboost stack runs the local stack from a source checkout of TestBoost "
        "(`make stack` there); this installation has no devstack package.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
