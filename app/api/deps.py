"""Dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session as DbSession

from app.core.config import Settings
from app.workflows.engine import WorkflowEngine


def get_db(request: Request) -> Iterator[DbSession]:
    with request.app.state.sessions() as db:
        yield db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_workflows(request: Request) -> WorkflowEngine:
    engine: WorkflowEngine = request.app.state.workflows
    return engine


DbDep = Annotated[DbSession, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
WorkflowsDep = Annotated[WorkflowEngine, Depends(get_workflows)]
