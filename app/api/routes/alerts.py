"""The inbox for Alertmanager's webhook, and the list of what it delivered."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import and_, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DbSession

from app.api.deps import DbDep
from app.core.inputs import SafeStr
from app.models import Alert, utcnow
from app.schemas import (
    ALERTNAME_LENGTH,
    MAX_OFFSET,
    TOO_LARGE,
    AlertOut,
    AlertPage,
    WebhookAlert,
    WebhookPayload,
    WebhookResult,
)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
# Alerts per transaction. A delivery of thousands held SQLite's write lock for its whole length,
# longer than other writers wait for it (they answered 503); in batches the lock is held a
# fraction of a second at a time. Alertmanager resends a delivery that failed whole, and the
# upsert makes that harmless (the batches already stored count one more notification).
BATCH = 100
# SQLite's busy handler retries a waiting writer every 100 ms at most: without a pause the next
# batch takes the lock again first, every time (measured: a session creation waited for the
# whole delivery). PostgreSQL locks rows, and needs none.
SQLITE_PAUSE_S = 0.1


@router.post(
    "/webhook",
    response_model=WebhookResult,
    responses=TOO_LARGE,
)
def receive_webhook(payload: WebhookPayload, db: DbDep) -> WebhookResult:
    """Alertmanager's webhook receiver (payload version 4): each alert is stored once per
    (fingerprint, startsAt); a re-sent notification updates it, a resolved one records its end.
    Point Alertmanager's `webhook_configs` here, with the API key as a bearer token.
    \f
    Store each alert once per (fingerprint, startsAt): a re-sent notification updates the
    same row, a resolved one records its end. Replicas of Alertmanager deliver the same alerts
    at once: each row is changed by one atomic upsert, in the same order by every delivery (so
    concurrent transactions never wait on each other in a cycle), committed in batches."""
    now = utcnow()
    alerts = sorted(payload.alerts, key=lambda a: (a.fingerprint, a.startsAt))
    created = 0
    pause = SQLITE_PAUSE_S if db.get_bind().dialect.name == "sqlite" else 0.0
    for start in range(0, len(alerts), BATCH):
        if start and pause:
            time.sleep(pause)  # between two batches: the lock is free for other writers
        created += sum(_upsert(db, a, payload.receiver, now) for a in alerts[start : start + BATCH])
        db.commit()
    return WebhookResult(received=len(alerts), created=created, updated=len(alerts) - created)


def _upsert(db: DbSession, alert: WebhookAlert, receiver: str, now: datetime) -> bool:
    """INSERT ... ON CONFLICT DO UPDATE; True when the alert was new."""
    values = {
        "fingerprint": alert.fingerprint,
        "starts_at": alert.startsAt,
        "status": alert.status,
        "ends_at": alert.endsAt if alert.status == "resolved" else None,
        "alertname": alert.labels.get("alertname", ""),
        "severity": alert.labels.get("severity"),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "generator_url": alert.generatorURL,
        "receiver": receiver or None,
        "notifications": 1,
        "first_received_at": now,
        "last_received_at": now,
    }
    insert = _INSERTS[db.get_bind().dialect.name](Alert).values(**values)
    stored, new = Alert.__table__.c, insert.excluded
    # A late firing notification must not reopen what was already resolved: it only counts.
    reopens = and_(stored.status == "resolved", new.status == "firing")
    changes: dict[str, Any] = {
        name: case((reopens, stored[name]), else_=new[name]) for name in _REPLACED
    }
    changes["notifications"] = stored.notifications + 1
    # Deliveries may commit out of the order they read the clock: never move `last` back.
    changes["last_received_at"] = case(
        (stored.last_received_at > new.last_received_at, stored.last_received_at),
        else_=new.last_received_at,
    )
    upsert = insert.on_conflict_do_update(
        index_elements=["fingerprint", "starts_at"], set_=changes
    ).returning(Alert.notifications)
    return db.execute(upsert).scalar_one() == 1


_INSERTS: dict[str, Callable[[type[Alert]], Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}
_REPLACED = (
    "status",
    "ends_at",
    "alertname",
    "severity",
    "labels",
    "annotations",
    "generator_url",
    "receiver",
)


@router.get("", response_model=AlertPage)
def list_alerts(
    db: DbDep,
    status: Literal["firing", "resolved"] | None = None,
    alertname: SafeStr | None = Query(default=None, max_length=ALERTNAME_LENGTH),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> AlertPage:
    """List the alerts Alertmanager delivered, most recently received first."""
    query = select(Alert)
    if status is not None:
        query = query.where(Alert.status == status)
    if alertname is not None:
        query = query.where(Alert.alertname == alertname)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(
        query.order_by(Alert.last_received_at.desc(), Alert.id.desc()).limit(limit).offset(offset)
    ).all()
    return AlertPage(
        items=[AlertOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )
