"""A session's and a step's state changes, each one conditional UPDATE: the API (pause, resume,
cancel) and the runners race safely, and a workflow's end is recorded exactly once — by
whoever sets `finished_at`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session as DbSession

from app.models import Session, SessionStatus, Step, StepStatus, utcnow

# Connection-level failures: the database is away, the workflow is not at fault.
DB_OUTAGE = (OperationalError, PoolTimeout)

# (workflow_type, final status, seconds): the single place a finished workflow becomes telemetry.
FinishedHook = Callable[[str, str, float], None]


def transition(
    db: DbSession,
    session_id: str,
    to: SessionStatus,
    allowed: tuple[SessionStatus, ...],
    **values: object,
) -> bool:
    """Move a session to `to` if its status is one of `allowed`; False if it was not."""
    result = db.execute(
        update(Session)
        .where(Session.id == session_id, Session.status.in_([s.value for s in allowed]))
        .values(status=to.value, updated_at=utcnow(), **values)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def end_step(db: DbSession, step_id: int, status: StepStatus, **values: object) -> None:
    db.execute(
        update(Step).where(Step.id == step_id).values(status=status, finished_at=utcnow(), **values)
    )


def finish(
    db: DbSession,
    session_id: str,
    on_finished: FinishedHook,
    status: SessionStatus | None = None,
    *,
    error: str | None = None,
) -> None:
    """Close the session once: set `finished_at` (and `status` when given, from in_progress
    only) and record the workflow's end. A second call changes nothing."""
    query = update(Session).where(Session.id == session_id, Session.finished_at.is_(None))
    values: dict[str, object] = {
        "finished_at": utcnow(),
        "claimed_by": None,
        "lease_expires_at": None,
    }
    if status is not None:
        query = query.where(Session.status == SessionStatus.IN_PROGRESS)
        values.update(status=status, error=error)
    if db.execute(query.values(**values)).rowcount != 1:  # type: ignore[attr-defined]
        return
    session = db.get(Session, session_id, populate_existing=True)
    assert session is not None and session.finished_at is not None
    began: datetime = session.started_at or session.created_at
    seconds = max(0.0, (session.finished_at - began).total_seconds())
    on_finished(session.session_type, session.status, seconds)
