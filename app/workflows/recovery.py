"""Recovery: taking over the runnable sessions nobody holds — never claimed, given back, or
whose owner died and let its lease run out. Each resumes at its first unfinished step."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from app.workflows import leases

log = logging.getLogger(__name__)


def take_over(
    sessions: sessionmaker[DbSession],
    owner_id: str,
    *,
    busy: set[str],
    free: int,
    submit: Callable[[str], bool],
) -> int:
    """Hand `submit` up to `free` orphaned sessions not in `busy`; how many it took."""
    with sessions() as db:
        found = leases.orphans(db, limit=free)
    taken = 0
    for session_id, previous in found:
        if session_id in busy or not submit(session_id):
            continue
        taken += 1
        if previous is not None and previous != owner_id:
            log.info(
                "Took over session %s from engine %s, which stopped renewing its lease",
                session_id,
                previous,
            )
    if taken:
        log.info("Resumed %d unfinished session(s)", taken)
    return taken
