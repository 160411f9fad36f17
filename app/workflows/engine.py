"""Runs session workflows in a bounded thread pool, persisting every state change.

Every status change goes through `_transition`, a conditional UPDATE: the API (pause, resume,
cancel) and the runners race safely, and a workflow's end is recorded exactly once — by
whoever sets `finished_at`.

Several processes may share the database (`--workers N`, rolling restarts, replicas): each
engine runs only the sessions whose lease it holds (app/workflows/leases.py). It claims a
session when a request creates or resumes it (in the same transaction, so that its workflow
runs in that request's trace) and when it queues it, renews its leases every third of their
life, checks it still holds the lease before each step (so a session it lost costs no LLM
call), and gives it back when the workflow stops here. A sweep — at start-up, every lease
period, and whenever a slot frees — takes over the sessions nobody holds: never claimed, given
back, or whose owner died and let its lease run out. A taken-over session resumes at its first
unfinished step.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
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
from app.llm.providers import Message
from app.models import Session, Step, utcnow
from app.workflows import leases
from app.workflows.definitions import (
    WORKFLOWS,
    Mode,
    SessionStatus,
    SessionType,
    StepStatus,
    build_prompt,
)

log = logging.getLogger(__name__)
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
        lease_ttl: float = 30.0,
    ) -> None:
        self._sessions = sessions
        self._llm = llm
        self._on_finished = on_finished
        self._tracer = tracer or trace.NoOpTracer()
        self._stop = stop or threading.Event()
        # The lease owner: this engine, not the host or the process (a restart is a new owner).
        self.owner_id = str(uuid.uuid4())
        self._lease_ttl = lease_ttl
        self._max_concurrent = max_concurrent
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="workflow")
        self._lock = threading.Lock()
        self._scheduled: dict[str, Future[None]] = {}
        self._wake_keeper = threading.Event()  # a slot freed: sweep now
        self._keeper_done = threading.Event()
        self._keeper: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def recover(self) -> int:
        """At start-up: take over the unfinished sessions no live engine holds (left by a
        stopped or dead process; each resumes at its first unfinished step, completed steps
        are kept), then keep our leases alive and sweep again periodically, so that the work
        of a process that dies later is taken over too. Sessions another live process runs
        are left to it."""
        taken = self._sweep()
        if self._keeper is None:
            self._keeper = threading.Thread(
                target=self._keep_leases, name="workflow-leases", daemon=True
            )
            self._keeper.start()
        return taken

    def shutdown(self, timeout: float) -> None:
        """Stop taking work, let running steps end (bounded), and give back the leases of
        everything else at once, so that another process resumes it without waiting."""
        self._stop.set()
        with self._lock:
            futures = dict(self._scheduled)
        self._pool.shutdown(wait=False, cancel_futures=True)
        # Queued work was cancelled above; `wait` would never see those futures finish.
        running = {sid: future for sid, future in futures.items() if not future.cancelled()}
        wait(running.values(), timeout=timeout)  # leases kept alive meanwhile
        in_flight = [sid for sid, future in running.items() if not future.done()]
        self._keeper_done.set()
        self._wake_keeper.set()
        if self._keeper is not None:
            self._keeper.join(timeout=5)
        if in_flight:
            # Their leases run out by themselves: another process must not start the same
            # step while ours may still be answered.
            log.warning(
                "%d workflow(s) still running at shutdown; another process resumes them once "
                "their lease expires (%.0f s), or this one on its next start",
                len(in_flight),
                self._lease_ttl,
            )
        try:
            with self._sessions.begin() as db:
                leases.release(db, self.owner_id, keep=in_flight)
        except DB_OUTAGE:
            log.warning("Could not release the sessions' leases; they expire by themselves")

    def wait_idle(self, timeout: float) -> bool:
        """For tests and benchmarks: wait until nothing is scheduled."""
        with self._lock:
            futures = list(self._scheduled.values())
        _, not_done = wait(futures, timeout=timeout)
        return not not_done

    # --- API operations --------------------------------------------------------------------

    def hold(self, session: Session) -> None:
        """Give a session about to be inserted this engine's lease, in its INSERT: a sweep
        between the commit and `submit` would take it, and its workflow would run outside
        the trace of the request that created it."""
        session.claimed_by = self.owner_id
        session.lease_expires_at = leases.db_clock(self._lease_ttl)

    def submit(self, session_id: str) -> bool:
        """Run the session's workflow here unless another live engine holds it: claim its
        lease, then queue it. True when this engine runs it."""
        # The caller's trace context (the request that created or resumed the session): the
        # pool's threads do not inherit it, and without it the workflow's spans would start a
        # trace of their own. From the sweep there is none: the workflow is a root.
        parent = otel_context.get_current()
        with self._lock:
            if session_id in self._scheduled:
                return True
            if self._stop.is_set():
                return False
        try:
            with self._sessions.begin() as db:
                claimed = leases.claim(db, session_id, self.owner_id, self._lease_ttl)
        except DB_OUTAGE as exc:
            log.warning(
                "Could not claim session %s (%s); a later sweep takes it",
                session_id,
                type(exc).__name__,
            )
            return False
        if not claimed:
            return False
        with self._lock:
            if session_id in self._scheduled:
                return True
            if self._stop.is_set():
                return False  # shutdown gives the lease back
            self._scheduled[session_id] = self._pool.submit(self._run, session_id, parent)
        return True

    def pause(self, session_id: str) -> None:
        self._require_transition(
            session_id,
            SessionStatus.PAUSED,
            (SessionStatus.PENDING, SessionStatus.IN_PROGRESS),
            "pause",
        )

    def resume(self, session_id: str) -> None:
        # Claimed with the status change (as `hold` does for a new session): a sweep between
        # the two would run the workflow outside the trace of the request that resumed it.
        self._require_transition(
            session_id, SessionStatus.PENDING, (SessionStatus.PAUSED,), "resume", claim=True
        )
        self.submit(session_id)

    def cancel(self, session_id: str) -> None:
        self._require_transition(
            session_id,
            SessionStatus.CANCELLED,
            (SessionStatus.PENDING, SessionStatus.IN_PROGRESS, SessionStatus.PAUSED),
            "cancel",
        )
        # A running step finishes in the background; its result is kept but no step follows.
        self._finish(session_id)

    def _require_transition(
        self,
        session_id: str,
        to: SessionStatus,
        allowed: Iterable[SessionStatus],
        verb: str,
        *,
        claim: bool = False,
    ) -> None:
        allowed = tuple(allowed)
        with self._sessions.begin() as db:
            if _transition(db, session_id, to, allowed):
                if claim:
                    leases.claim(db, session_id, self.owner_id, self._lease_ttl)
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
            # Given back before leaving `_scheduled`: a resume landing meanwhile either finds
            # us still scheduled (then `_resubmit_if_resumed` sees it) or claims afresh.
            self._release(session_id)
            with self._lock:
                self._scheduled.pop(session_id, None)
            self._wake_keeper.set()  # a slot is free: look for orphaned work
            self._resubmit_if_resumed(session_id)

    def _release(self, session_id: str) -> None:
        try:
            with self._sessions.begin() as db:
                leases.release(db, self.owner_id, only=[session_id])
        except DB_OUTAGE:
            pass  # the lease runs out by itself

    def _resubmit_if_resumed(self, session_id: str) -> None:
        """A resume may have landed while we were leaving: do not strand it."""
        try:
            with self._sessions() as db:
                status = db.scalar(select(Session.status).where(Session.id == session_id))
        except DB_OUTAGE:
            return  # the next start-up's recovery picks it up
        if status == SessionStatus.PENDING:
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
            if not leases.claim(db, session_id, self.owner_id, self._lease_ttl):
                self._log_if_lost(db, session_id)
                return None
            session = db.get(Session, session_id, populate_existing=True)
            if session is None:
                return None
            if session.status == SessionStatus.PENDING:
                _transition(
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
                self._finish(session_id, SessionStatus.COMPLETED, db=db)
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
            _end_step(
                db, step.step_id, StepStatus.FAILED, error=str(failure), attempts=failure.attempts
            )
            self._finish(session_id, SessionStatus.FAILED, db=db, error=f"step failed: {failure}")

    def _complete_step(self, session_id: str, step: _NextStep, text: str, attempts: int) -> bool:
        """Store the step's answer; True when the workflow goes on at once."""
        with self._sessions.begin() as db:
            if not self._still_ours(db, session_id):
                return False
            _end_step(
                db, step.step_id, StepStatus.COMPLETED, output=text, attempts=attempts, error=None
            )
            if step.is_last:
                self._finish(session_id, SessionStatus.COMPLETED, db=db)
                return False
            if step.interactive:
                _transition(db, session_id, SessionStatus.PAUSED, (SessionStatus.IN_PROGRESS,))
        return True

    def _still_ours(self, db: DbSession, session_id: str) -> bool:
        """After an LLM call: save its result unless another engine took the session while
        it ran (our lease ran out, e.g. in a database outage); that engine runs the step.
        An unowned session (cancelled meanwhile) keeps the result."""
        owner = leases.holder(db, session_id)
        if owner is None or owner == self.owner_id:
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
        if row is not None and row.status in leases.RUNNABLE and row.claimed_by != self.owner_id:
            log.warning(
                "Session %s is now run by engine %s (our lease ran out); stopping here",
                session_id,
                row.claimed_by,
            )

    # --- leases ----------------------------------------------------------------------------

    def _keep_leases(self) -> None:
        """The keeper thread: renew our leases every third of their life (sooner after a
        failed renewal), sweep every lease period and whenever a runner frees a slot."""
        period = self._lease_ttl
        renew_at = time.monotonic() + period / 3
        sweep_at = time.monotonic() + period
        while True:
            woken = self._wake_keeper.wait(max(0.0, min(renew_at, sweep_at) - time.monotonic()))
            if self._keeper_done.is_set():
                return
            self._wake_keeper.clear()
            now = time.monotonic()
            try:
                if now >= renew_at:
                    renew_at = now + (period / 3 if self._renew() else min(1.0, period / 3))
                if (woken or now >= sweep_at) and not self._stop.is_set():
                    sweep_at = now + period
                    self._sweep()
            except DB_OUTAGE as exc:
                log.warning("Lease upkeep: database unavailable (%s)", type(exc).__name__)
            except Exception:
                log.exception("Lease upkeep failed")

    def _renew(self) -> bool:
        with self._lock:
            ids = list(self._scheduled)
        if not ids:
            return True
        try:
            with self._sessions.begin() as db:
                leases.renew(db, ids, self.owner_id, self._lease_ttl)
        except DB_OUTAGE as exc:
            log.warning(
                "Could not renew the leases of %d session(s) (%s); retrying",
                len(ids),
                type(exc).__name__,
            )
            return False
        return True

    def _sweep(self) -> int:
        """Take over, up to our free slots, the runnable sessions nobody holds."""
        with self._lock:
            busy = set(self._scheduled)
        free = self._max_concurrent - len(busy)
        if free <= 0 or self._stop.is_set():
            return 0
        with self._sessions() as db:
            found = leases.orphans(db, limit=free)
        taken = 0
        for session_id, previous in found:
            if session_id in busy or not self.submit(session_id):
                continue
            taken += 1
            if previous is not None and previous != self.owner_id:
                log.info(
                    "Took over session %s from engine %s, which stopped renewing its lease",
                    session_id,
                    previous,
                )
        if taken:
            log.info("Resumed %d unfinished session(s)", taken)
        return taken

    # --- endings ---------------------------------------------------------------------------

    def _fail(self, session_id: str, reason: str) -> None:
        with self._sessions.begin() as db:
            self._finish(session_id, SessionStatus.FAILED, db=db, error=reason)

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
        values: dict[str, object] = {
            "finished_at": utcnow(),
            "claimed_by": None,
            "lease_expires_at": None,
        }
        if status is not None:
            query = query.where(Session.status == SessionStatus.IN_PROGRESS)
            values.update(status=status, error=error)
        if db.execute(query.values(**values)).rowcount != 1:  # type: ignore[attr-defined]
            return None
        session = db.get(Session, session_id, populate_existing=True)
        assert session is not None and session.finished_at is not None
        began: datetime = session.started_at or session.created_at
        seconds = max(0.0, (session.finished_at - began).total_seconds())
        self._on_finished(session.session_type, session.status, seconds)
        return None


@dataclass(frozen=True)
class _NextStep:
    """A step marked running, and what its LLM call and its ending need."""

    step_id: int
    messages: list[Message]
    is_last: bool
    interactive: bool


def _end_step(db: DbSession, step_id: int, status: StepStatus, **values: object) -> None:
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
