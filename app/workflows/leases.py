"""Session leases: which engine runs a session, and until when, on the database's clock.

A session is run by the engine whose id is in `claimed_by` while `lease_expires_at` is in the
future. Every statement here is one conditional UPDATE (or a SELECT for the sweep), so two
processes racing for a session cannot both win: PostgreSQL re-checks the WHERE clause of a
row another transaction just updated, and SQLite runs one writer at a time.

Times are the database's own clock (`statement_timestamp()` in UTC, SQLite's `'now'`, which
is UTC), never the processes': replicas on different hosts share that one clock, so a
skewed host cannot steal a live lease or keep a dead one alive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, bindparam, or_, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.sql.functions import FunctionElement

from app.models import Session, SessionStatus, UTCDateTime

# A session a runner may hold: not paused, not finished.
RUNNABLE = (SessionStatus.PENDING.value, SessionStatus.IN_PROGRESS.value)
# Lease bookkeeping is not a change of the session: `updated_at` keeps its value.
_QUIET = {"updated_at": Session.updated_at}
# Rows per renewal statement: far below every driver's limit on bound parameters.
RENEW_CHUNK = 500


class db_clock(FunctionElement[datetime]):  # an SQL function, named like one
    """The database's current UTC time plus `seconds`, as the naive UTC the columns hold."""

    type = UTCDateTime()
    inherit_cache = True
    name = "db_clock"

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__(bindparam(None, float(seconds), type_=Float()))


@compiles(db_clock, "postgresql")
def _postgres_clock(element: db_clock, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"((statement_timestamp() AT TIME ZONE 'UTC') + make_interval(secs => {seconds}))"


@compiles(db_clock, "sqlite")
def _sqlite_clock(element: db_clock, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text; this is the same
    # layout (milliseconds), so lease times compare as text in time order.
    seconds = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', ({seconds}) || ' seconds')"


def _free_or_expired(owner: str) -> ColumnElement[bool]:
    return or_(
        Session.claimed_by.is_(None),
        Session.claimed_by == owner,
        Session.lease_expires_at.is_(None),
        Session.lease_expires_at < db_clock(),
    )


def claim(db: DbSession, session_id: str, owner: str, ttl: float) -> bool:
    """Take or extend the lease of a runnable session: True if `owner` holds it now.
    Succeeds when the session is unowned, already ours, or its owner's lease expired."""
    result = db.execute(
        update(Session)
        .where(Session.id == session_id, Session.status.in_(RUNNABLE), _free_or_expired(owner))
        .values(claimed_by=owner, lease_expires_at=db_clock(ttl), **_QUIET)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def renew(db: DbSession, session_ids: Sequence[str], owner: str, ttl: float) -> int:
    """Push back the leases `owner` still holds among `session_ids`; how many it holds."""
    held = 0
    for start in range(0, len(session_ids), RENEW_CHUNK):
        chunk = session_ids[start : start + RENEW_CHUNK]
        result = db.execute(
            update(Session)
            .where(Session.id.in_(chunk), Session.claimed_by == owner)
            .values(lease_expires_at=db_clock(ttl), **_QUIET)
            .execution_options(synchronize_session=False)
        )
        held += int(result.rowcount)  # type: ignore[attr-defined]
    return held


def release(
    db: DbSession, owner: str, *, only: Iterable[str] | None = None, keep: Iterable[str] = ()
) -> int:
    """Give up `owner`'s leases (those on `only` when given, except those on `keep`) so that
    another engine may take the work at once instead of when the lease runs out."""
    query = update(Session).where(Session.claimed_by == owner)
    if only is not None:
        query = query.where(Session.id.in_(list(only)))
    kept = list(keep)
    if kept:
        query = query.where(Session.id.not_in(kept))
    result = db.execute(
        query.values(claimed_by=None, lease_expires_at=None, **_QUIET).execution_options(
            synchronize_session=False
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def orphans(db: DbSession, limit: int) -> list[tuple[str, str | None]]:
    """Runnable sessions nobody holds (never claimed, released, or whose owner's lease
    expired), oldest first, with their last owner: what a sweep may take over."""
    rows = db.execute(
        select(Session.id, Session.claimed_by)
        .where(
            Session.status.in_(RUNNABLE),
            or_(
                Session.claimed_by.is_(None),
                Session.lease_expires_at.is_(None),
                Session.lease_expires_at < db_clock(),
            ),
        )
        .order_by(Session.created_at)
        .limit(limit)
    ).all()
    return [(row.id, row.claimed_by) for row in rows]


def holder(db: DbSession, session_id: str) -> str | None:
    """The session's current owner, the row locked until the transaction ends (PostgreSQL),
    so that no claim slips between this check and the write that depends on it."""
    return db.scalar(select(Session.claimed_by).where(Session.id == session_id).with_for_update())
