"""Dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session as DbSession

from app.workflows.engine import WorkflowEngine


def get_db(request: Request) -> Iterator[DbSession]:
    with request.app.state.sessions() as db:
        yield db


def get_workflows(request: Request) -> WorkflowEngine:
    engine: WorkflowEngine = request.app.state.workflows
    return engine


DbDep = Annotated[DbSession, Depends(get_db)]
WorkflowsDep = Annotated[WorkflowEngine, Depends(get_workflows)]
