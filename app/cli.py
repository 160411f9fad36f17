"""The `testboost` command: `serve` runs the API (what `make run` calls); `doctor` checks it
and its monitoring stack (the doctor package); `stack` runs that stack as local processes
(devstack/, what `make stack` calls)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.config import Settings, SettingsError, load_settings
from app.core.security import is_loopback

if TYPE_CHECKING:
    from telemetry import TelemetryConfig

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s span=%(span_id)s] %(message)s"


def configure_logging(level: str) -> None:
    from telemetry.tracing import TraceContextFilter

    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Alembic's plugin registry logs seven INFO lines at every start: nothing an operator needs.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


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
    configure_logging(settings.log_level)
    problem = _database_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    with _shared_metrics_dir(args.workers, telemetry_config):
        import uvicorn

        from app.core.server import uvicorn_options

        uvicorn.run(
            "app.main:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            proxy_headers=False,
            **uvicorn_options(settings),
        )
    return 0


def _database_problem(settings: Settings) -> str | None:
    """A one-line reason when the database does not answer, before any worker starts."""
    from app.core.db import DatabaseUnreachable, make_engine, reachable_or_raise

    try:
        engine = make_engine(settings)
    except (OSError, ValueError) as exc:  # a SQLite file whose folder cannot be made, say
        return f"Cannot use the database at {settings.database_url} (TESTBOOST_DATABASE_URL): {exc}"
    try:
        reachable_or_raise(engine, settings)
    except DatabaseUnreachable as exc:
        return str(exc)
    finally:
        engine.dispose()
    return None


@contextlib.contextmanager
def _shared_metrics_dir(workers: int, telemetry_config: TelemetryConfig) -> Iterator[None]:
    """Pull mode with several workers: a directory they publish their metrics to, so that a
    scrape of any of them shows the sum (telemetry/multiprocess.py). An empty one for each
    start: TESTBOOST_METRICS_DIR emptied when given, a fresh one removed at exit otherwise."""
    if (
        workers < 2
        or telemetry_config.disabled
        or telemetry_config.metrics_exporter != "prometheus"
    ):
        yield
        return
    from telemetry.config import TESTBOOST_METRICS_DIR
    from telemetry.multiprocess import clear

    if telemetry_config.metrics_dir:
        clear(Path(telemetry_config.metrics_dir))
        yield
        return
    with tempfile.TemporaryDirectory(prefix="testboost-metrics-") as directory:
        os.environ[TESTBOOST_METRICS_DIR] = directory
        try:
            yield
        finally:
            del os.environ[TESTBOOST_METRICS_DIR]


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
