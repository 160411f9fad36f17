"""Engine, sessions and migrations. One engine per app; its pool is what the pool gauges read."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings

log = logging.getLogger(__name__)
# Inside the app package, so an installed wheel carries its migrations.
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def make_engine(settings: Settings) -> Engine:
    kwargs: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_pre_ping": True,
    }
    path = settings.sqlite_path()
    if settings.is_sqlite:
        if path is None:
            raise ValueError("TESTBOOST_DATABASE_URL: in-memory SQLite is not shared; use a file")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Workflows run in worker threads; SQLite connections are handed between them by the pool.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        # A database host that does not answer must fail fast, not hang a request.
        kwargs["connect_args"] = {"connect_timeout": 5}
    engine = create_engine(settings.database_url, **kwargs)
    if settings.is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (API) and the writer (workflow steps) proceed together.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_gauge_engine(settings: Settings) -> Engine:
    """A one-connection engine for the gauges read at each scrape. Kept apart from the
    request pool: when that pool is exhausted — exactly when DBConnectionPoolExhausted should
    fire — a scrape waiting for it would time out and turn `up` to 0."""
    return make_engine(
        settings.model_copy(
            update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 2.0}
        )
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def _migration_lock(engine: Engine, settings: Settings) -> Iterator[None]:
    """Several worker processes start together; only one migrates at a time."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(7405511)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(7405511)"))
                conn.commit()
        return
    path = settings.sqlite_path()
    assert path is not None
    with open(path.with_suffix(".migrate.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def migrate(engine: Engine, settings: Settings) -> None:
    """Bring the schema to the latest Alembic revision (DatabaseUnreachable when the database
    does not answer)."""
    reachable_or_raise(engine, settings)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine, settings), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class DatabaseUnreachable(RuntimeError):
    """The database does not answer at start-up; the message is the one line to show."""


def reachable_or_raise(engine: Engine, settings: Settings) -> None:
    """One line naming the database (password masked) and the driver's reason, instead of the
    connection error's traceback."""
    try:
        check_database(engine)
    except OperationalError as exc:
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc) else ""
        raise DatabaseUnreachable(
            f"Cannot reach the database at {url} (TESTBOOST_DATABASE_URL): {reason}"
        ) from None


def check_database(engine: Engine) -> None:
    """Raise if the database does not answer a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
