"""Request and response bodies of the public API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.core.inputs import NO_NUL, SafeStr, ScalarMap, TextMap, check_text, string_length, to_utc
from app.models import Alert, Session, SessionStatus, StepStatus
from app.workflows.definitions import Mode, SessionType

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
    "description": f"At most {MAX_CONFIG_KEYS} keys and {MAX_CONFIG_BYTES} bytes as JSON",
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
    session_type: SessionType
    project_path: SafeStr = Field(min_length=1, max_length=string_length(Session.project_path))
    mode: Mode = Mode.AUTONOMOUS
    config: Config = Field(default_factory=dict, max_length=MAX_CONFIG_KEYS, json_schema_extra=KEYS)

    _config_size = field_validator("config")(_config_size)


class SessionUpdate(Input):
    """Fields that may change after creation; the workflow reads them at its next step."""

    mode: Mode | None = None
    config: Config | None = Field(default=None, max_length=MAX_CONFIG_KEYS, json_schema_extra=KEYS)

    _config_size = field_validator("config")(_config_size)


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
    status: StepStatus
    output: str | None
    error: str | None
    attempts: int
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
