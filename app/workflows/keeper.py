"""The lease keeper: a thread that keeps the leases of the sessions an engine runs alive, and
has it sweep for orphaned work (`WorkflowEngine._sweep`) every lease period and whenever a
runner frees a slot."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from app.workflows import leases
from app.workflows.transitions import DB_OUTAGE

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        sessions: sessionmaker[DbSession],
        *,
        owner_id: str,
        lease_ttl: float,
        held: Callable[[], list[str]],
        sweep: Callable[[], int],
        stop: threading.Event,
    ) -> None:
        self._sessions = sessions
        self._owner_id = owner_id
        self._lease_ttl = lease_ttl
        self._held = held  # the sessions whose leases to renew
        self._sweep = sweep
        self._stop = stop  # the engine takes no more work: renew, but do not sweep
        self._wake = threading.Event()  # a slot freed: sweep now
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="workflow-leases", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._done.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        """Renew our leases every third of their life (sooner after a failed renewal), sweep
        every lease period and whenever woken."""
        period = self._lease_ttl
        renew_at = time.monotonic() + period / 3
        sweep_at = time.monotonic() + period
        while True:
            woken = self._wake.wait(max(0.0, min(renew_at, sweep_at) - time.monotonic()))
            if self._done.is_set():
                return
            self._wake.clear()
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
        ids = self._held()
        if not ids:
            return True
        try:
            with self._sessions.begin() as db:
                leases.renew(db, ids, self._owner_id, self._lease_ttl)
        except DB_OUTAGE as exc:
            log.warning(
                "Could not renew the leases of %d session(s) (%s); retrying",
                len(ids),
                type(exc).__name__,
            )
            return False
        return True
