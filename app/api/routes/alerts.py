"""The inbox for Alertmanager's webhook, and the list of what it delivered."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from app.api.deps import DbDep
from app.core.inputs import SafeStr
from app.models import Alert, utcnow
from app.schemas import (
    ALERTNAME_LENGTH,
    MAX_OFFSET,
    AlertOut,
    AlertPage,
    Problem,
    WebhookAlert,
    WebhookPayload,
    WebhookResult,
)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.post(
    "/webhook",
    response_model=WebhookResult,
    responses={413: {"model": Problem, "description": "Body larger than the configured limit"}},
)
def receive_webhook(payload: WebhookPayload, db: DbDep) -> WebhookResult:
    """Store each alert once per (fingerprint, startsAt): a re-sent notification updates the
    same row, a resolved one records its end."""
    created = updated = 0
    for alert in payload.alerts:
        if _upsert(db, alert, payload.receiver):
            created += 1
        else:
            updated += 1
    return WebhookResult(received=len(payload.alerts), created=created, updated=updated)


def _upsert(db: DbSession, alert: WebhookAlert, receiver: str) -> bool:
    """True when the alert was new. Retried once if a concurrent delivery inserted it first."""
    for _ in range(2):
        row = db.scalar(
            select(Alert).where(
                Alert.fingerprint == alert.fingerprint, Alert.starts_at == alert.startsAt
            )
        )
        is_new = row is None
        if row is None:
            row = Alert(fingerprint=alert.fingerprint, starts_at=alert.startsAt, notifications=0)
            db.add(row)
        elif row.status == "resolved" and alert.status == "firing":
            # A late firing notification must not reopen what was already resolved.
            row.notifications += 1
            row.last_received_at = utcnow()
            db.commit()
            return False
        row.status = alert.status
        row.ends_at = alert.endsAt if alert.status == "resolved" else None
        row.alertname = alert.labels.get("alertname", "")
        row.severity = alert.labels.get("severity")
        row.labels = alert.labels
        row.annotations = alert.annotations
        row.generator_url = alert.generatorURL
        row.receiver = receiver or None
        row.notifications += 1
        row.last_received_at = utcnow()
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            continue
        return is_new
    raise RuntimeError(f"alert {alert.fingerprint} could not be stored")


@router.get("", response_model=AlertPage)
def list_alerts(
    db: DbDep,
    status: Literal["firing", "resolved"] | None = None,
    alertname: SafeStr | None = Query(default=None, max_length=ALERTNAME_LENGTH),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> AlertPage:
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
