"""The `testboost` command: `serve` runs the API (what `make run` calls); `doctor` checks it and
its monitoring stack (doctor/); `stack` runs that stack as local processes (devstack/, what
`make stack` calls; a source checkout's tool). A command imports only what it runs: doctor and
devstack are loaded when their command is given."""

from __future__ import annotations

import argparse
import importlib
import sys

from cli import serve

HELP = argparse.ArgumentDefaultsHelpFormatter


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["stack"]:
        return _stack(argv[1:])
    if argv[:1] == ["doctor"]:
        return _doctor(argv[1:])
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
    # Listed for `testboost --help`; `main` hands their arguments to their own parsers.
    commands.add_parser("doctor", help=DOCTOR_HELP, add_help=False)
    commands.add_parser("stack", help=STACK_HELP, add_help=False)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


DOCTOR_HELP = "check the API and its monitoring stack"
STACK_HELP = "run the API, Prometheus and Alertmanager locally (no Docker; a source checkout's)"


def _doctor(argv: list[str]) -> int:
    from doctor import main as doctor_main

    return doctor_main(argv)


def _stack(argv: list[str]) -> int:
    """`testboost stack ...` where devstack/ is (a source checkout: it runs the repository's
    configs with the binaries `make tools` installs); elsewhere one line that says so."""
    try:
        devstack_cli = importlib.import_module("devstack.cli")
    except ModuleNotFoundError:
        if {"-h", "--help"} & set(argv):
            print(f"usage: testboost stack ...\n\n{STACK_HELP}: {NO_STACK}")
            return 0
        print(f"testboost stack: {NO_STACK}", file=sys.stderr)
        return 2
    result: int = devstack_cli.main(argv)
    return result


NO_STACK = (
    "it runs the local stack from a source checkout of TestBoost (`make stack` there); this "
    "installation has no devstack package"
)


if __name__ == "__main__":
    sys.exit(main())
