"""Request and response bodies of the public API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.core.inputs import NO_NUL, SafeStr, ScalarMap, TextMap, check_text, string_length, to_utc
from app.models import Alert, Session, SessionStatus, StepStatus
from app.workflows.definitions import Mode, SessionType

# The enums' meaning, in the fields that take them: the enums themselves carry no description.
SESSION_TYPE = (
    "The workflow to run, a fixed list of LLM steps: `test_generation` (find untested code and "
    "write JUnit 5 tests), `maven_maintenance` (dependencies, vulnerabilities, update plan), "
    "`docker_deployment` (Dockerfile, compose file, health checks), `impact_analysis` (which "
    "modules and tests recent changes affect, and their risk)."
)
MODE = (
    "`autonomous` runs every step in a row; `interactive` pauses the session after each step "
    "but the last, until `POST /api/v2/sessions/{id}/resume`; `analysis_only` runs every step "
    "but asks the LLM for findings only, never for changes."
)
STATUS = (
    "`pending` (waiting for a worker), `in_progress`, `paused`; final: `completed`, `failed` "
    "(`error` says why), `cancelled`."
)

# Every string a client sends is a SafeStr, every number finite (app/core/inputs.py), and
# strings stored in a sized column are no longer than the column.
Config = ScalarMap
MAX_CONFIG_KEYS = 50
# A session's config as JSON, at most: a list page carries every session's config, and configs
# bounded only by the body limit made one page as large as a page's worth of request bodies.
MAX_CONFIG_BYTES = 16 * 1024
# The map's own schema drops maxProperties; JSON Schema has no byte size: it is said.
KEYS: dict[str, Any] = {
    "maxProperties": MAX_CONFIG_KEYS,
    "description": (
        "Free-form settings passed to every step's prompt: string keys, scalar values; at most "
        f"{MAX_CONFIG_KEYS} keys and {MAX_CONFIG_BYTES} bytes as JSON"
    ),
}
ALERTNAME_LENGTH = string_length(Alert.alertname)
# Deeper pages are refused (422) rather than handed to the database as a 64-bit overflow.
MAX_OFFSET = 1_000_000


class Input(BaseModel):
    """A request body that refuses unknown fields. Their names are client text too: the 422
    names them, so they must be encodable."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _names_are_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in data:
                check_text(name)
        return data


def _config_size(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if config is not None and len(json.dumps(config).encode()) > MAX_CONFIG_BYTES:
        raise ValueError(f"is larger than {MAX_CONFIG_BYTES} bytes as JSON")
    return config


class SessionCreate(Input):
    """A new session: its workflow starts at once."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_type": "test_generation",
                    "project_path": "/srv/projects/billing",
                    "mode": "interactive",
                    "config": {"java_version": 21},
                }
            ]
        }
    )

    session_type: SessionType = Field(description=SESSION_TYPE)
    project_path: SafeStr = Field(
        min_length=1,
        max_length=string_length(Session.project_path),
        description="The project the workflow is about, as the LLM is told it",
    )
    mode: Mode = Field(default=Mode.AUTONOMOUS, description=MODE)
    config: Config = Field(default_factory=dict, max_length=MAX_CONFIG_KEYS, json_schema_extra=KEYS)

    _config_size = field_validator("config")(_config_size)


class SessionUpdate(Input):
    """Fields that may change after creation; the workflow reads them at its next step. A
    config replaces the whole config."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"mode": "autonomous"}]})

    mode: Mode | None = Field(default=None, description=MODE)
    config: Config | None = Field(default=None, max_length=MAX_CONFIG_KEYS, json_schema_extra=KEYS)

    _config_size = field_validator("config")(_config_size)


class SessionOut(BaseModel):
    """A session and where its workflow stands."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="The session's id, in every other session URL")
    session_type: SessionType = Field(description=SESSION_TYPE)
    project_path: str
    mode: Mode = Field(description=MODE)
    config: dict[str, Any] = Field(description="Settings passed to every step's prompt")
    status: SessionStatus = Field(description=STATUS)
    error: str | None = Field(description="Why the session failed; null otherwise")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = Field(description="When its workflow first ran")
    finished_at: datetime | None = Field(description="When it reached a final status")


class SessionPage(BaseModel):
    """One page of sessions, newest first."""

    items: list[SessionOut]
    total: int = Field(description="Sessions matching the filters, on every page")
    limit: int
    offset: int


class StepOut(BaseModel):
    """One step of a session's workflow: a prompt to the LLM and its answer."""

    model_config = ConfigDict(from_attributes=True)

    position: int = Field(description="0 for the first step")
    name: str
    status: StepStatus
    output: str | None = Field(description="The LLM's answer, once the step completed")
    error: str | None = Field(description="Why the step failed")
    attempts: int = Field(description="LLM calls made for this step, retries included")
    started_at: datetime | None
    finished_at: datetime | None


# --- Alertmanager webhook, payload version 4 ---------------------------------------------
# https://prometheus.io/docs/alerting/latest/configuration/#webhook_config

LabelSet = TextMap
# Labels copied into a column of their own.
LABEL_COLUMNS = {"alertname": ALERTNAME_LENGTH, "severity": string_length(Alert.severity)}


def _zero_time_is_none(value: datetime | None) -> datetime | None:
    """Alertmanager sends `0001-01-01T00:00:00Z` for "no end yet"."""
    if value is None or value.year <= 1:
        return None
    return to_utc(value)


class WebhookAlert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: LabelSet = Field(
        json_schema_extra={
            "properties": {
                name: {"type": "string", "pattern": NO_NUL, "maxLength": length}
                for name, length in LABEL_COLUMNS.items()
            }
        }
    )
    annotations: LabelSet = Field(default_factory=dict)
    # Dates of the calendar's first or last day may not exist in UTC (422): the schema says so
    # with a pattern.
    startsAt: datetime = Field(json_schema_extra={"pattern": "^(?!0001-01-01|9999-12-31)"})
    endsAt: datetime | None = Field(default=None, json_schema_extra={"pattern": "^(?!9999-12-31)"})
    generatorURL: SafeStr | None = Field(default=None, max_length=4096)
    fingerprint: SafeStr = Field(min_length=1, max_length=string_length(Alert.fingerprint))

    @field_validator("labels")
    @classmethod
    def _fit_their_columns(cls, labels: dict[str, str]) -> dict[str, str]:
        for name, length in LABEL_COLUMNS.items():
            if len(labels.get(name, "")) > length:
                raise ValueError(f"label {name} must have at most {length} characters")
        return labels

    _starts = field_validator("startsAt")(to_utc)
    _ends = field_validator("endsAt")(_zero_time_is_none)


class WebhookPayload(BaseModel):
    version: Literal["4"]
    groupKey: SafeStr = ""
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: SafeStr = Field(default="", max_length=string_length(Alert.receiver))
    groupLabels: LabelSet = Field(default_factory=dict)
    commonLabels: LabelSet = Field(default_factory=dict)
    commonAnnotations: LabelSet = Field(default_factory=dict)
    externalURL: SafeStr = ""
    alerts: list[WebhookAlert] = Field(max_length=10_000)


class WebhookResult(BaseModel):
    """What a delivery changed."""

    received: int = Field(description="Alerts in the delivery")
    created: int = Field(description="Alerts seen for the first time")
    updated: int = Field(description="Alerts already stored, updated")


class AlertOut(BaseModel):
    """An alert as Alertmanager last delivered it, one per (fingerprint, starts_at)."""

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
    notifications: int = Field(description="Deliveries that carried this alert")
    first_received_at: datetime
    last_received_at: datetime


class AlertPage(BaseModel):
    """One page of alerts, most recently received first."""

    items: list[AlertOut]
    total: int
    limit: int
    offset: int


class Problem(BaseModel):
    """Error body of every 4xx/5xx the API itself produces."""

    detail: str = Field(description="What went wrong, for a human")


class DatabaseCheck(BaseModel):
    status: Literal["ok", "failing"]
    latency_ms: float | None = Field(
        default=None, description="Round trip of the check query; only when `ok`"
    )
    error: str | None = Field(
        default=None, description="The driver's error class; only when `failing`"
    )


class HealthChecks(BaseModel):
    database: DatabaseCheck


class HealthResponse(BaseModel):
    """Whether the API can serve: `healthy` (200) or `unhealthy` (503)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "healthy", "checks": {"database": {"status": "ok", "latency_ms": 0.4}}}
            ]
        }
    )

    status: Literal["healthy", "unhealthy"]
    checks: HealthChecks


Responses = dict[int | str, dict[str, Any]]
# Routes behind the API key (app/core/security.py) and the database (app/api/errors.py).
PROTECTED: Responses = {
    401: {
        "model": Problem,
        "description": "Missing or wrong API key (X-API-Key or Authorization: Bearer)",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "example": "Bearer"}},
    },
    503: {
        "model": Problem,
        "description": "The database is unreachable; retry after `Retry-After` seconds",
        "headers": {"Retry-After": {"schema": {"type": "string"}, "example": "5"}},
    },
}
TOO_LARGE: Responses = {413: {"model": Problem, "description": "Body larger than the limit"}}
