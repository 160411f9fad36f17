"""Runs session workflows in a bounded thread pool, persisting every state change.

Every status change goes through `_transition`, a conditional UPDATE: the API (pause, resume,
cancel) and the runners race safely, and a workflow's end is recorded exactly once — by
whoever sets `finished_at`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime

from opentelemetry import context as otel_context
from opentelemetry import trace
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from app.llm.client import LLMClient
from app.llm.outcomes import LLMFailed
from app.models import Session, Step, utcnow
from app.workflows.definitions import (
    WORKFLOWS,
    Mode,
    SessionStatus,
    SessionType,
    build_prompt,
)

log = logging.getLogger(__name__)
S = SessionStatus
# Connection-level failures: the database is away, the workflow is not at fault.
DB_OUTAGE = (OperationalError, PoolTimeout)

# (workflow_type, final status, seconds): the single place a finished workflow becomes telemetry.
FinishedHook = Callable[[str, str, float], None]


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


def new_steps(session_type: SessionType) -> list[Step]:
    return [
        Step(position=index, name=definition.name)
        for index, definition in enumerate(WORKFLOWS[session_type])
    ]


class WorkflowEngine:
    def __init__(
        self,
        sessions: sessionmaker[DbSession],
        llm: LLMClient,
        *,
        max_concurrent: int,
        on_finished: FinishedHook,
        tracer: trace.Tracer | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._sessions = sessions
        self._llm = llm
        self._on_finished = on_finished
        self._tracer = tracer or trace.NoOpTracer()
        self._stop = stop or threading.Event()
        self._boot_id = str(uuid.uuid4())
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="workflow")
        self._lock = threading.Lock()
        self._scheduled: dict[str, Future[None]] = {}

    # --- lifecycle -------------------------------------------------------------------------

    def recover(self) -> int:
        """Resume what a previous process left: in-progress work restarts at its first
        unfinished step (completed steps are kept), and pending sessions are queued again."""
        with self._sessions.begin() as db:
            db.execute(update(Step).where(Step.status == "running").values(status="pending"))
            db.execute(
                update(Session)
                .where(Session.status == S.IN_PROGRESS)
                .values(status=S.PENDING, claimed_by=None)
            )
            ids = db.scalars(
                select(Session.id).where(Session.status == S.PENDING).order_by(Session.created_at)
            ).all()
        for session_id in ids:
            self.submit(session_id)
        if ids:
            log.info("Resumed %d unfinished session(s)", len(ids))
        return len(ids)

    def shutdown(self, timeout: float) -> None:
        """Stop taking work, let running steps end (bounded), leave the rest for next start."""
        self._stop.set()
        with self._lock:
            futures = list(self._scheduled.values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        # Queued work was cancelled above; `wait` would never see those futures finish.
        running = [future for future in futures if not future.cancelled()]
        _done, not_done = wait(running, timeout=timeout)
        if not_done:
            log.warning(
                "%d workflow(s) still running at shutdown; they resume on next start", len(not_done)
            )

    def wait_idle(self, timeout: float) -> bool:
        """For tests and benchmarks: wait until nothing is scheduled."""
        with self._lock:
            futures = list(self._scheduled.values())
        _, not_done = wait(futures, timeout=timeout)
        return not not_done

    # --- API operations --------------------------------------------------------------------

    def submit(self, session_id: str) -> None:
        # The caller's trace context (the request that created or resumed the session): the
        # pool's threads do not inherit it, and without it the workflow's spans would start a
        # trace of their own. At start-up (recover) there is none: the workflow is a root.
        parent = otel_context.get_current()
        with self._lock:
            if session_id in self._scheduled or self._stop.is_set():
                return
            future = self._pool.submit(self._run, session_id, parent)
            self._scheduled[session_id] = future

    def pause(self, session_id: str) -> None:
        self._require_transition(session_id, S.PAUSED, (S.PENDING, S.IN_PROGRESS), "pause")

    def resume(self, session_id: str) -> None:
        self._require_transition(session_id, S.PENDING, (S.PAUSED,), "resume")
        self.submit(session_id)

    def cancel(self, session_id: str) -> None:
        self._require_transition(
            session_id, S.CANCELLED, (S.PENDING, S.IN_PROGRESS, S.PAUSED), "cancel"
        )
        # A running step finishes in the background; its result is kept but no step follows.
        self._finish(session_id)

    def _require_transition(
        self, session_id: str, to: SessionStatus, allowed: Iterable[SessionStatus], verb: str
    ) -> None:
        allowed = tuple(allowed)
        with self._sessions.begin() as db:
            if _transition(db, session_id, to, allowed):
                return
            status = db.scalar(select(Session.status).where(Session.id == session_id))
        if status is None:
            raise NotFound(session_id)
        names = ", ".join(s.value for s in allowed)
        raise Conflict(f"cannot {verb} a session that is {status}; only {names} sessions can")

    # --- the runner ------------------------------------------------------------------------

    def _run(self, session_id: str, parent: otel_context.Context) -> None:
        try:
            with self._tracer.start_as_current_span(
                "workflow.run", context=parent, attributes={"testboost.session.id": session_id}
            ):
                while not self._stop.is_set() and self._step_surviving_outages(session_id):
                    pass
        except Exception:
            log.exception("Workflow of session %s crashed", session_id)
            try:
                self._fail(session_id, "internal error while running the workflow")
            except Exception:
                log.exception("Could not mark session %s failed", session_id)
        finally:
            with self._lock:
                self._scheduled.pop(session_id, None)
            self._resubmit_if_resumed(session_id)

    def _resubmit_if_resumed(self, session_id: str) -> None:
        """A resume may have landed while we were leaving: do not strand it."""
        try:
            with self._sessions() as db:
                status = db.scalar(select(Session.status).where(Session.id == session_id))
        except DB_OUTAGE:
            return  # the next start-up's recovery picks it up
        if status == S.PENDING:
            self.submit(session_id)

    def _step_surviving_outages(self, session_id: str) -> bool:
        """`_run_next_step`, waiting out database outages instead of failing the workflow:
        every state change is in the database, so a step whose result could not be saved
        is simply run again once the database answers (at-least-once per step)."""
        delay = 0.5
        while True:
            try:
                return self._run_next_step(session_id)
            except DB_OUTAGE as exc:
                log.warning(
                    "Database unavailable for session %s (%s); retrying in %.1fs",
                    session_id,
                    type(exc).__name__,
                    delay,
                )
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, 10.0)

    def _run_next_step(self, session_id: str) -> bool:
        """Run one step; True while there is more to do."""
        with self._sessions.begin() as db:
            session = db.get(Session, session_id)
            if session is None:
                return False
            if session.status == S.PENDING:
                claimed = _transition(
                    db,
                    session_id,
                    S.IN_PROGRESS,
                    (S.PENDING,),
                    claimed_by=self._boot_id,
                    started_at=session.started_at or utcnow(),
                )
                if not claimed:
                    return False
            elif session.status != S.IN_PROGRESS or session.claimed_by != self._boot_id:
                return False
            steps = db.scalars(
                select(Step).where(Step.session_id == session_id).order_by(Step.position)
            ).all()
            step = next((s for s in steps if s.status != "completed"), None)
            if step is None:
                self._finish(session_id, S.COMPLETED, db=db)
                return False
            step.status = "running"
            step.started_at = utcnow()
            messages = build_prompt(
                session_type=session.session_type,
                mode=session.mode,
                project_path=session.project_path,
                config=session.config,
                step=WORKFLOWS[SessionType(session.session_type)][step.position],
                previous_outputs=[s.output or "" for s in steps if s.status == "completed"],
            )
            step_id, is_last = step.id, step.position == len(steps) - 1
            interactive = session.mode == Mode.INTERACTIVE

        try:
            completion = self._llm.complete(messages)
        except LLMFailed as failure:
            if self._stop.is_set():
                return False  # shutting down: the step is retried on the next start
            with self._sessions.begin() as db:
                _end_step(db, step_id, "failed", error=str(failure), attempts=failure.attempts)
            self._fail(session_id, f"step failed: {failure}")
            return False

        with self._sessions.begin() as db:
            _end_step(
                db,
                step_id,
                "completed",
                output=completion.text,
                attempts=completion.attempts,
                error=None,
            )
            if is_last:
                self._finish(session_id, S.COMPLETED, db=db)
                return False
            if interactive:
                _transition(db, session_id, S.PAUSED, (S.IN_PROGRESS,))
        return True

    def _fail(self, session_id: str, reason: str) -> None:
        with self._sessions.begin() as db:
            self._finish(session_id, S.FAILED, db=db, error=reason)

    def _finish(
        self,
        session_id: str,
        status: SessionStatus | None = None,
        *,
        db: DbSession | None = None,
        error: str | None = None,
    ) -> None:
        """Close the session once: set `finished_at` (and `status` when given, from
        in_progress only) and record the workflow's end. A second call changes nothing."""
        if db is None:
            with self._sessions.begin() as own:
                return self._finish(session_id, status, db=own, error=error)
        query = update(Session).where(Session.id == session_id, Session.finished_at.is_(None))
        values: dict[str, object] = {"finished_at": utcnow(), "claimed_by": None}
        if status is not None:
            query = query.where(Session.status == S.IN_PROGRESS)
            values.update(status=status, error=error)
        if db.execute(query.values(**values)).rowcount != 1:  # type: ignore[attr-defined]
            return None
        session = db.get(Session, session_id, populate_existing=True)
        assert session is not None and session.finished_at is not None
        began: datetime = session.started_at or session.created_at
        seconds = max(0.0, (session.finished_at - began).total_seconds())
        self._on_finished(session.session_type, session.status, seconds)
        return None


def _end_step(db: DbSession, step_id: int, status: str, **values: object) -> None:
    db.execute(
        update(Step).where(Step.id == step_id).values(status=status, finished_at=utcnow(), **values)
    )


def _transition(
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
