"""Runs one session's workflow, step after step, in the calling thread: each step is marked
running, asked of the LLM, and its answer stored, every change in the database, so that a
workflow stopped anywhere resumes at its first unfinished step.

The runner checks it still holds the session's lease before each step (so a session paused,
cancelled or taken over meanwhile costs no LLM call) and before storing an answer (another
engine that took the session over runs the step instead).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from app.llm.client import LLMClient
from app.llm.outcomes import LLMFailed
from app.llm.providers import Message
from app.models import Session, SessionStatus, Step, StepStatus, utcnow
from app.workflows import leases
from app.workflows.definitions import WORKFLOWS, Mode, SessionType, build_prompt
from app.workflows.transitions import DB_OUTAGE, FinishedHook, end_step, finish, transition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _NextStep:
    """A step marked running, and what its LLM call and its ending need."""

    step_id: int
    messages: list[Message]
    is_last: bool
    interactive: bool


class StepRunner:
    def __init__(
        self,
        sessions: sessionmaker[DbSession],
        llm: LLMClient,
        *,
        owner_id: str,
        lease_ttl: float,
        on_finished: FinishedHook,
        tracer: trace.Tracer,
        stop: threading.Event,
    ) -> None:
        self._sessions = sessions
        self._llm = llm
        self._owner_id = owner_id
        self._lease_ttl = lease_ttl
        self._on_finished = on_finished
        self._tracer = tracer
        self._stop = stop

    def run(self, session_id: str, parent: otel_context.Context) -> None:
        """Run the session's steps until it ends, pauses, is lost or the engine stops; a crash
        fails the session."""
        try:
            with self._tracer.start_as_current_span(
                "workflow.run", context=parent, attributes={"testboost.session.id": session_id}
            ):
                while not self._stop.is_set() and self._step_surviving_outages(session_id):
                    pass
        except Exception:
            log.exception("Workflow of session %s crashed", session_id)
            try:
                with self._sessions.begin() as db:
                    finish(
                        db,
                        session_id,
                        self._on_finished,
                        SessionStatus.FAILED,
                        error="internal error while running the workflow",
                    )
            except Exception:
                log.exception("Could not mark session %s failed", session_id)

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
        step = self._start_next_step(session_id)
        if step is None:
            return False
        try:
            completion = self._llm.complete(step.messages)
        except LLMFailed as failure:
            if not self._stop.is_set():  # shutting down: the step is retried on the next start
                self._fail_step(session_id, step, failure)
            return False
        return self._complete_step(session_id, step, completion.text, completion.attempts)

    def _start_next_step(self, session_id: str) -> _NextStep | None:
        """Mark the session's first unfinished step running and build its prompt; None when
        there is nothing to run (lease lost, session gone, or every step done)."""
        with self._sessions.begin() as db:
            # Still ours, and runnable? Checked (and the lease extended) before every step, so
            # a session paused, cancelled or taken over meanwhile costs no LLM call.
            if not leases.claim(db, session_id, self._owner_id, self._lease_ttl):
                self._log_if_lost(db, session_id)
                return None
            session = db.get(Session, session_id, populate_existing=True)
            if session is None:
                return None
            if session.status == SessionStatus.PENDING:
                transition(
                    db,
                    session_id,
                    SessionStatus.IN_PROGRESS,
                    (SessionStatus.PENDING,),
                    started_at=session.started_at or utcnow(),
                )
            steps = db.scalars(
                select(Step).where(Step.session_id == session_id).order_by(Step.position)
            ).all()
            done = [s for s in steps if s.status == StepStatus.COMPLETED]
            step = next((s for s in steps if s.status != StepStatus.COMPLETED), None)
            if step is None:
                finish(db, session_id, self._on_finished, SessionStatus.COMPLETED)
                return None
            step.status = StepStatus.RUNNING
            step.started_at = utcnow()
            messages = build_prompt(
                session_type=session.session_type,
                mode=session.mode,
                project_path=session.project_path,
                config=session.config,
                step=WORKFLOWS[SessionType(session.session_type)][step.position],
                previous_outputs=[s.output or "" for s in done],
            )
            return _NextStep(
                step_id=step.id,
                messages=messages,
                is_last=step.position == len(steps) - 1,
                interactive=session.mode == Mode.INTERACTIVE,
            )

    def _fail_step(self, session_id: str, step: _NextStep, failure: LLMFailed) -> None:
        with self._sessions.begin() as db:
            if not self._still_ours(db, session_id):
                return
            end_step(
                db, step.step_id, StepStatus.FAILED, error=str(failure), attempts=failure.attempts
            )
            finish(
                db,
                session_id,
                self._on_finished,
                SessionStatus.FAILED,
                error=f"step failed: {failure}",
            )

    def _complete_step(self, session_id: str, step: _NextStep, text: str, attempts: int) -> bool:
        """Store the step's answer; True when the workflow goes on at once."""
        with self._sessions.begin() as db:
            if not self._still_ours(db, session_id):
                return False
            end_step(
                db, step.step_id, StepStatus.COMPLETED, output=text, attempts=attempts, error=None
            )
            if step.is_last:
                finish(db, session_id, self._on_finished, SessionStatus.COMPLETED)
                return False
            if step.interactive:
                transition(db, session_id, SessionStatus.PAUSED, (SessionStatus.IN_PROGRESS,))
        return True

    def _still_ours(self, db: DbSession, session_id: str) -> bool:
        """After an LLM call: save its result unless another engine took the session while
        it ran (our lease ran out, e.g. in a database outage); that engine runs the step.
        An unowned session (cancelled meanwhile) keeps the result."""
        owner = leases.holder(db, session_id)
        if owner is None or owner == self._owner_id:
            return True
        log.warning(
            "Session %s was taken over by engine %s while its step ran here; "
            "leaving the step to it",
            session_id,
            owner,
        )
        return False

    def _log_if_lost(self, db: DbSession, session_id: str) -> None:
        row = db.execute(
            select(Session.status, Session.claimed_by).where(Session.id == session_id)
        ).first()
        if row is not None and row.status in leases.RUNNABLE and row.claimed_by != self._owner_id:
            log.warning(
                "Session %s is now run by engine %s (our lease ran out); stopping here",
                session_id,
                row.claimed_by,
            )
