"""Runs session workflows in a bounded thread pool, persisting every state change.

The engine schedules; the rest is in one module per concern: running a workflow's steps
(runner.py), the conditional state changes everything goes through (transitions.py), the
leases' SQL (leases.py) and keeping them alive (keeper.py); the engine itself takes over
orphaned work (`_sweep`).

Several processes may share the database (`--workers N`, rolling restarts, replicas): each
engine runs only the sessions whose lease it holds. It claims a session when a request
creates or resumes it (in the same transaction, so that its workflow runs in that request's
trace) and when it queues it, renews its leases every third of their life, checks it still
holds the lease before each step (so a session it lost costs no LLM call), and gives it back
when the workflow stops here. A sweep — at start-up, every lease period, and whenever a slot
frees — takes over the sessions nobody holds.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from opentelemetry import context as otel_context
from opentelemetry import trace
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from app.llm.client import LLMClient
from app.models import Session, SessionStatus, Step
from app.workflows import leases
from app.workflows.definitions import WORKFLOWS, SessionType
from app.workflows.keeper import LeaseKeeper
from app.workflows.runner import StepRunner
from app.workflows.transitions import DB_OUTAGE, FinishedHook, finish, transition

log = logging.getLogger(__name__)


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
        self._on_finished = on_finished
        self._stop = stop or threading.Event()
        # The lease owner: this engine, not the host or the process (a restart is a new owner).
        self.owner_id = str(uuid.uuid4())
        self._lease_ttl = lease_ttl
        self._max_concurrent = max_concurrent
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="workflow")
        self._lock = threading.Lock()
        self._scheduled: dict[str, Future[None]] = {}
        self._runner = StepRunner(
            sessions,
            llm,
            owner_id=self.owner_id,
            lease_ttl=lease_ttl,
            on_finished=on_finished,
            tracer=tracer or trace.NoOpTracer(),
            stop=self._stop,
        )
        self._keeper = LeaseKeeper(
            sessions,
            owner_id=self.owner_id,
            lease_ttl=lease_ttl,
            held=self._held,
            sweep=self._sweep,
            stop=self._stop,
        )

    # --- lifecycle -------------------------------------------------------------------------

    def recover(self) -> int:
        """At start-up: take over the unfinished sessions no live engine holds (left by a
        stopped or dead process; each resumes at its first unfinished step, completed steps
        are kept), then keep our leases alive and sweep again periodically, so that the work
        of a process that dies later is taken over too. Sessions another live process runs
        are left to it."""
        taken = self._sweep()
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
        self._keeper.close()
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
        with self._sessions.begin() as db:
            finish(db, session_id, self._on_finished)

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
            if transition(db, session_id, to, allowed):
                if claim:
                    leases.claim(db, session_id, self.owner_id, self._lease_ttl)
                return
            status = db.scalar(select(Session.status).where(Session.id == session_id))
        if status is None:
            raise NotFound(session_id)
        names = ", ".join(s.value for s in allowed)
        raise Conflict(f"cannot {verb} a session that is {status}; only {names} sessions can")

    # --- scheduling ------------------------------------------------------------------------

    def _run(self, session_id: str, parent: otel_context.Context) -> None:
        try:
            self._runner.run(session_id, parent)
        finally:
            # Given back before leaving `_scheduled`: a resume landing meanwhile either finds
            # us still scheduled (then `_resubmit_if_resumed` sees it) or claims afresh.
            self._release(session_id)
            with self._lock:
                self._scheduled.pop(session_id, None)
            self._keeper.wake()  # a slot is free: look for orphaned work
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

    def _held(self) -> list[str]:
        with self._lock:
            return list(self._scheduled)

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
