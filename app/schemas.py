"""Request and response bodies of the public API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.workflows.definitions import Mode, SessionStatus, SessionType

Config = dict[str, str | int | float | bool | None]
# Deeper pages are refused (422) rather than handed to the database as a 64-bit overflow.
MAX_OFFSET = 1_000_000


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_type: SessionType
    project_path: str = Field(min_length=1, max_length=1024)
    mode: Mode = Mode.AUTONOMOUS
    config: Config = Field(default_factory=dict, max_length=50)


class SessionUpdate(BaseModel):
    """Fields that may change after creation; the workflow reads them at its next step."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = None
    config: Config | None = Field(default=None, max_length=50)


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    session_type: SessionType
    project_path: str
    mode: Mode
    config: dict[str, Any]
    status: SessionStatus
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SessionPage(BaseModel):
    items: list[SessionOut]
    total: int
    limit: int
    offset: int


class StepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    position: int
    name: str
    status: Literal["pending", "running", "completed", "failed"]
    output: str | None
    error: str | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None


# --- Alertmanager webhook, payload version 4 ---------------------------------------------
# https://prometheus.io/docs/alerting/latest/configuration/#webhook_config

LabelSet = dict[str, str]


def _zero_time_is_none(value: datetime | None) -> datetime | None:
    """Alertmanager sends `0001-01-01T00:00:00Z` for "no end yet"."""
    if value is None or value.year <= 1:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class WebhookAlert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str | None = Field(default=None, max_length=4096)
    fingerprint: str = Field(min_length=1, max_length=64)

    @field_validator("startsAt")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    _ends = field_validator("endsAt")(_zero_time_is_none)


class WebhookPayload(BaseModel):
    version: Literal["4"]
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str = Field(default="", max_length=200)
    groupLabels: LabelSet = Field(default_factory=dict)
    commonLabels: LabelSet = Field(default_factory=dict)
    commonAnnotations: LabelSet = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(max_length=10_000)


class WebhookResult(BaseModel):
    received: int
    created: int
    updated: int


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    fingerprint: str
    alertname: str
    severity: str | None
    status: Literal["firing", "resolved"]
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, Any]
    annotations: dict[str, Any]
    generator_url: str | None
    receiver: str | None
    notifications: int
    first_received_at: datetime
    last_received_at: datetime


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


class Problem(BaseModel):
    """Error body of every 4xx/5xx the API itself produces."""

    detail: str
