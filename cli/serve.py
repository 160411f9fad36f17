"""`testboost serve`: the API under uvicorn, after one-line checks of what would otherwise
fail as a traceback (settings, the key on a public address, the database)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.config import Settings, SettingsError, load_settings
from app.core.logs import configure_logging
from app.core.security import is_loopback

if TYPE_CHECKING:
    from telemetry import TelemetryConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes; in pull mode one scrape of the port shows their sum",
    )


def run(args: argparse.Namespace) -> int:
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
    from telemetry.instance import serve_base
    from telemetry.metrics_dir import MetricsDirError

    serve_base(args.port)

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_shared_metrics_dir(args.workers, telemetry_config))
        except MetricsDirError as exc:
            print(exc, file=sys.stderr)
            return 2
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
    from sqlalchemy import make_url

    from app.core.db import DatabaseUnreachable, make_engine, reachable_or_raise

    try:
        engine = make_engine(settings)
    except (OSError, ValueError) as exc:  # a SQLite file whose folder cannot be made, say
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        return f"Cannot use the database at {url} (TESTBOOST_DATABASE_URL): {exc}"
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
    from telemetry.multiprocess import prepare

    if telemetry_config.metrics_dir:
        prepare(Path(telemetry_config.metrics_dir))
        yield
        return
    with tempfile.TemporaryDirectory(prefix="testboost-metrics-") as directory:
        prepare(Path(directory))
        os.environ[TESTBOOST_METRICS_DIR] = directory
        try:
            yield
        finally:
            del os.environ[TESTBOOST_METRICS_DIR]
