"""`testboost doctor`: arguments, running every check, printing, exit code.

Defaults are the compose ports on this host; `--stack [WORKDIR]` reads the local stack's
instead (its URLs, API key, mode, collector and export interval, from WORKDIR/state.json), and
a flag given overrides what it read. API, Prometheus and Alertmanager are checked by default
(pass an empty URL, e.g. `--alertmanager ''`, to skip one); Grafana only when `--grafana` is
given, because its API needs credentials. When the API pushes its metrics (OTLP),
`--otlp-agent` names the health URL of the agent it pushes to; `--jaeger` the query API of the
Jaeger its traces go to (the stack's, with --stack, when it runs one). A check is SKIP when the
URL of its component was not given, it does not apply (the agent's in pull mode), or a
component it needs is down: that component's first check failed, and names the fix once. WARN
is not a failure. Exit code 0 when no check failed, 1 when one did, 2 when the doctor could
not run (nothing recorded where --stack points). The fixes name what works in the topology
checked: the local stack with --stack, Kubernetes when the doctor runs in a pod, else compose;
`--topology` says it otherwise. A credential that begins with '-' is given with '='
(`--api-key=-k…`) or through its environment variable: argparse takes it for an option.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from doctor.checks import CHECKS
from doctor.context import COMPONENTS, Context, Options
from doctor.local_stack import DEFAULT_WORKDIR, NoStack, read, shown
from doctor.model import Check, Result, Status
from doctor.report import as_json, table, use_colour
from doctor.runner import run_all
from doctor.shipped import DEFAULT_MONITORING_DIR
from doctor.topology import Topology, detect
from telemetry.config import DEFAULT_SERVICE_NAME

DEFAULT_URLS = {
    "api": "http://127.0.0.1:8000",
    "prometheus": "http://127.0.0.1:9090",
    "alertmanager": "http://127.0.0.1:9093",
}
DEFAULT_GRAFANA = "http://127.0.0.1:3000"
DEFAULT_JAEGER = "http://127.0.0.1:16686"  # compose/docker-compose.otel.yaml's query API
DEFAULT_EXPORT_INTERVAL = 15.0
EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else None
LABELS = {"api": "the API", "prometheus": "Prometheus", "alertmanager": "Alertmanager"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The doctor's options. Each help says its default; those read from the environment are
    named, never shown (they are credentials)."""
    parser.add_argument(
        "--stack",
        nargs="?",
        const=DEFAULT_WORKDIR,
        default=None,
        type=Path,
        metavar="WORKDIR",
        help="check the local stack recorded in WORKDIR/state.json by `testboost stack up`: its "
        "URLs, API key, mode, collector (push mode) and export interval; a flag given "
        f"overrides what it read (default: not read; WORKDIR defaults to {DEFAULT_WORKDIR})",
    )
    for component, url in DEFAULT_URLS.items():
        parser.add_argument(
            f"--{component}",
            default=None,
            metavar="URL",
            help=f"{LABELS[component]}; '' skips its checks (default: {url}, or the stack's "
            "with --stack)",
        )
    parser.add_argument(
        "--grafana",
        nargs="?",
        const=DEFAULT_GRAFANA,
        default=None,
        metavar="URL",
        help=f"check Grafana too, at URL (default: not checked; URL defaults to {DEFAULT_GRAFANA})",
    )
    parser.add_argument(
        "--grafana-token",
        metavar="TOKEN",
        help="Grafana service account token (default: $TESTBOOST_GRAFANA_TOKEN, if set)",
    )
    parser.add_argument(
        "--grafana-user",
        metavar="USER",
        help="Grafana basic auth user (default: $GF_ADMIN_USER, if set)",
    )
    parser.add_argument(
        "--grafana-password",
        metavar="PASSWORD",
        help="Grafana basic auth password (default: $GF_ADMIN_PASSWORD, if set)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="the API key, checked where Alertmanager's webhook presents it, the alert inbox "
        "(default: the stack's secrets/testboost-api-key with --stack, else $TESTBOOST_API_KEY "
        "if set; none: that check is SKIP)",
    )
    parser.add_argument(
        "--metrics-token",
        metavar="TOKEN",
        help="bearer token the API's /metrics requires (default: the stack's "
        "TESTBOOST_METRICS_TOKEN with --stack, else $TESTBOOST_METRICS_TOKEN, if set)",
    )
    parser.add_argument(
        "--monitoring-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the monitoring/ folder whose dashboards are checked (default: "
        f"{DEFAULT_MONITORING_DIR}, this checkout's)",
    )
    parser.add_argument(
        "--otlp-agent",
        default=None,
        metavar="URL",
        help="push mode: health URL of the agent the API pushes to, e.g. "
        "http://127.0.0.1:13133/status (the Collector's healthcheckv2, as "
        "otel-collector/config.yaml has it) or http://127.0.0.1:8429/health (vmagent) "
        "(default: the stack's collector with --stack in push mode, else none: push mode is "
        "then a warning)",
    )
    parser.add_argument(
        "--jaeger",
        nargs="?",
        const=DEFAULT_JAEGER,
        default=None,
        metavar="URL",
        help="the query API of the Jaeger the API's traces go to: it must answer, and a request "
        "the doctor traces must reach it (default: the stack's Jaeger with --stack when it was "
        f"started with --traces, else not checked; URL defaults to {DEFAULT_JAEGER})",
    )
    parser.add_argument(
        "--trace-service",
        default=DEFAULT_SERVICE_NAME,
        metavar="NAME",
        help="the API's service.name in Jaeger, its OTEL_SERVICE_NAME (default: "
        f"{DEFAULT_SERVICE_NAME})",
    )
    parser.add_argument(
        "--export-interval",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="push mode: the API's export interval (OTEL_METRIC_EXPORT_INTERVAL, in seconds) "
        f"(default: {DEFAULT_EXPORT_INTERVAL:g}, or the stack's with --stack: 1 when started "
        "with --fast)",
    )
    parser.add_argument(
        "--topology",
        type=Topology,
        choices=list(Topology),
        default=None,
        help="where the stack runs, for the fixes to name its commands and pages (default: "
        "local with --stack, kubernetes when KUBERNETES_SERVICE_HOST is set, i.e. in a pod, "
        "else compose)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds per HTTP request (default: 5)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON instead of a table (default: a table)"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def options_from(args: argparse.Namespace) -> Options:
    """Options from the command line: a flag given, else what --stack read, else the default.
    Raises NoStack when --stack points where no stack is recorded."""
    stack = read(args.stack) if args.stack is not None else None
    env = os.environ.get

    def url(component: str) -> str | None:
        given: str | None = getattr(args, component)
        if given is None:
            given = getattr(stack, component) if stack else DEFAULT_URLS[component]
        return given or None  # '' skips the component

    def pick(given: str | None, *fallbacks: str | None) -> str | None:
        """The flag when given ('' meaning none), else the first fallback set."""
        if given is not None:
            return given or None
        return next((value for value in fallbacks if value), None)

    return Options(
        api=url("api"),
        prometheus=url("prometheus"),
        alertmanager=url("alertmanager"),
        grafana=args.grafana or None,
        metrics_token=pick(
            args.metrics_token,
            stack.metrics_token if stack else None,
            env("TESTBOOST_METRICS_TOKEN"),
        ),
        grafana_token=pick(args.grafana_token, env("TESTBOOST_GRAFANA_TOKEN")),
        grafana_user=pick(args.grafana_user, env("GF_ADMIN_USER")),
        grafana_password=pick(args.grafana_password, env("GF_ADMIN_PASSWORD")),
        monitoring_dir=args.monitoring_dir,
        timeout=args.timeout,
        otlp_agent=pick(args.otlp_agent, stack.otlp_agent if stack else None),
        jaeger=pick(args.jaeger, stack.jaeger if stack else None),
        trace_service=args.trace_service,
        export_interval=args.export_interval
        or (stack.export_interval if stack else DEFAULT_EXPORT_INTERVAL),
        api_key=pick(args.api_key, stack.api_key if stack else None, env("TESTBOOST_API_KEY")),
        stack=stack.workdir if stack else None,
        stack_up_options=stack.up_options if stack else "",
        topology=args.topology or detect(stack is not None, os.environ),
    )


def run_checks(options: Options, checks: Sequence[Check] = CHECKS) -> list[Result]:
    context = Context(options)
    try:
        return run_all(checks, context)
    finally:
        context.close()


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        options = options_from(args)
    except NoStack as exc:
        print(f"testboost doctor: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    results = run_checks(options)
    urls = {c: getattr(options, c.replace("-", "_")) for c in COMPONENTS}
    if args.json:
        out.write(as_json(results, urls))
    else:
        if options.stack is not None:
            out.write(_checking(options.stack, urls))
        out.write(table(results, colour=use_colour(out)))
    return EXIT_FAILED if any(r.status is Status.FAIL for r in results) else EXIT_OK


def _checking(workdir: Path, urls: dict[str, str | None]) -> str:
    """The line above the table when the URLs were not typed: what is checked."""
    listed = ", ".join(f"{name} {url}" for name, url in urls.items() if url)
    return f"Local stack in {shown(workdir)}: {listed}\n\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testboost doctor", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
