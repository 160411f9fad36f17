"""`testboost doctor`: arguments, running every check, printing, exit code.

Defaults are the compose ports on this host. API, Prometheus and Alertmanager are checked by
default (pass an empty URL, e.g. `--alertmanager ''`, to skip one); Grafana only when
`--grafana` is given, because its API needs credentials. When the API pushes its metrics
(OTLP), `--otlp-agent` names the health URL of the agent it pushes to. A check is SKIP when
the URL of its component was not given or it does not apply (the agent's in pull mode); WARN
is not a failure; exit code 0 only when no check failed.
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
from doctor.model import Check, Result, Status
from doctor.report import as_json, table, use_colour

DEFAULT_URLS = {
    "api": "http://127.0.0.1:8000",
    "prometheus": "http://127.0.0.1:9090",
    "alertmanager": "http://127.0.0.1:9093",
}
DEFAULT_GRAFANA = "http://127.0.0.1:3000"
EXIT_OK, EXIT_FAILED = 0, 1
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    for component, url in DEFAULT_URLS.items():
        parser.add_argument(
            f"--{component}", default=url, metavar="URL", help=f"default {url}; '' skips it"
        )
    parser.add_argument(
        "--grafana",
        nargs="?",
        const=DEFAULT_GRAFANA,
        default=None,
        metavar="URL",
        help=f"check Grafana too (URL defaults to {DEFAULT_GRAFANA})",
    )
    parser.add_argument(
        "--grafana-token",
        default=env("TESTBOOST_GRAFANA_TOKEN"),
        help="Grafana service account token (env TESTBOOST_GRAFANA_TOKEN)",
    )
    parser.add_argument(
        "--grafana-user", default=env("GF_ADMIN_USER"), help="basic auth user (env GF_ADMIN_USER)"
    )
    parser.add_argument(
        "--grafana-password",
        default=env("GF_ADMIN_PASSWORD"),
        help="basic auth password (env GF_ADMIN_PASSWORD)",
    )
    parser.add_argument(
        "--metrics-token",
        default=env("TESTBOOST_METRICS_TOKEN"),
        help="bearer token /metrics requires (env TESTBOOST_METRICS_TOKEN)",
    )
    parser.add_argument(
        "--monitoring-dir",
        type=Path,
        default=None,
        help="the repository's monitoring/ folder (default: the checkout this runs from)",
    )
    parser.add_argument(
        "--otlp-agent",
        default=None,
        metavar="URL",
        help="push mode: health URL of the agent the API pushes to, e.g. "
        "http://127.0.0.1:13133/status (the Collector's healthcheckv2, as "
        "otel-collector/config.yaml has it) or http://127.0.0.1:8429/health (vmagent); "
        "without it push mode is a warning",
    )
    parser.add_argument(
        "--export-interval",
        type=_seconds,
        default=15.0,
        metavar="SECONDS",
        help="push mode: the API's export interval (OTEL_METRIC_EXPORT_INTERVAL, in seconds); "
        "default 15",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per HTTP request")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        api=args.api or None,
        prometheus=args.prometheus or None,
        alertmanager=args.alertmanager or None,
        grafana=args.grafana or None,
        metrics_token=args.metrics_token or None,
        grafana_token=args.grafana_token or None,
        grafana_user=args.grafana_user or None,
        grafana_password=args.grafana_password or None,
        monitoring_dir=args.monitoring_dir,
        timeout=args.timeout,
        otlp_agent=args.otlp_agent or None,
        export_interval=args.export_interval,
    )


def run_checks(options: Options, checks: Sequence[Check] = CHECKS) -> list[Result]:
    context = Context(options)
    try:
        return [check.run(context) for check in checks]
    finally:
        context.close()


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    options = options_from(args)
    results = run_checks(options)
    if args.json:
        urls = {c: getattr(options, c.replace("-", "_")) for c in COMPONENTS}
        out.write(as_json(results, urls))
    else:
        out.write(table(results, colour=use_colour(out)))
    return EXIT_FAILED if any(r.status is Status.FAIL for r in results) else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testboost doctor", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
