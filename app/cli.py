"""The `testboost` command: `serve` runs the API (what `make run` calls); `doctor` checks it
and its monitoring stack (the doctor package); `stack` runs that stack as local processes
(devstack/, what `make stack` calls)."""

from __future__ import annotations

import argparse
import logging
import sys

from app.core.config import SettingsError, load_settings
from app.core.security import is_loopback

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s span=%(span_id)s] %(message)s"


def configure_logging(level: str) -> None:
    from telemetry.tracing import TraceContextFilter

    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        from telemetry import TelemetryConfig, TelemetryConfigError

        try:
            telemetry_config = TelemetryConfig.from_env()
        except TelemetryConfigError as exc:
            raise SettingsError(f"Invalid telemetry configuration: {exc}") from None
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if settings.api_key is None and not is_loopback(args.host):
        print(
            f"Refusing to listen on {args.host} without TESTBOOST_API_KEY: anyone on the "
            "network could drive the API. Set a key, or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    if args.workers > 1 and telemetry_config.metrics_exporter == "prometheus":
        print(
            "note: with several workers each /metrics scrape shows one process's numbers; "
            "use OTEL_METRICS_EXPORTER=otlp to sum them (docs/architecture.md)",
            file=sys.stderr,
        )
    configure_logging(settings.log_level)

    import uvicorn

    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        proxy_headers=False,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testboost", description="TestBoost API tools")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the API")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--workers", type=int, default=1)
    serve_cmd.set_defaults(func=serve)
    from devstack.cli import register as register_stack

    register_stack(commands)
    from doctor import DESCRIPTION, add_arguments, run

    doctor_cmd = commands.add_parser(
        "doctor", help="check the API and its monitoring stack", description=DESCRIPTION
    )
    add_arguments(doctor_cmd)
    doctor_cmd.set_defaults(func=run)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
