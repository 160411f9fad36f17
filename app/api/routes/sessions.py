"""Sessions: create one and its workflow starts; list, read, change, pause, resume, cancel."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import func, select

from app.api.deps import DbDep, WorkflowsDep
from app.core.inputs import SafeStr
from app.models import Session, SessionStatus, Step
from app.schemas import (
    MAX_OFFSET,
    TOO_LARGE,
    Problem,
    Responses,
    SessionCreate,
    SessionOut,
    SessionPage,
    SessionUpdate,
    StepOut,
)
from app.workflows.definitions import SessionType
from app.workflows.engine import Conflict, NotFound, new_steps

router = APIRouter(prefix="/api/v2/sessions", tags=["sessions"])
NOT_FOUND: Responses = {404: {"model": Problem, "description": "No session has this id"}}
CONFLICT: Responses = {409: {"model": Problem, "description": "The session's status forbids this"}}


def _get(db: DbDep, session_id: str) -> Session:
    session = db.get(Session, session_id)
    if session is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"session {session_id} not found")
    return session


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=SessionOut, responses=TOO_LARGE
)
def create_session(body: SessionCreate, db: DbDep, workflows: WorkflowsDep) -> Session:
    """Create a session; its workflow starts at once (status `pending`, then `in_progress`).
    Follow it with `GET /api/v2/sessions/{id}` and its steps."""
    session = Session(
        session_type=body.session_type.value,
        project_path=body.project_path,
        mode=body.mode.value,
        config=body.config,
        status=SessionStatus.PENDING.value,
        steps=new_steps(body.session_type),
    )
    workflows.hold(session)
    db.add(session)
    db.commit()
    workflows.submit(session.id)
    return session


@router.get("", response_model=SessionPage)
def list_sessions(
    db: DbDep,
    status_: SessionStatus | None = Query(default=None, alias="status"),
    session_type: SessionType | None = None,
    limit: int = Query(default=20, ge=1, le=100),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> SessionPage:
    """List sessions, newest first, optionally by status and type; `total` counts them all."""
    query = select(Session)
    if status_ is not None:
        query = query.where(Session.status == status_.value)
    if session_type is not None:
        query = query.where(Session.session_type == session_type.value)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(
        query.order_by(Session.created_at.desc(), Session.id).limit(limit).offset(offset)
    ).all()
    return SessionPage(
        items=[SessionOut.model_validate(row) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{session_id}", response_model=SessionOut, responses=NOT_FOUND)
def get_session(session_id: SafeStr, db: DbDep) -> Session:
    """Read one session: its status, and `error` once it failed."""
    return _get(db, session_id)


@router.patch(
    "/{session_id}", response_model=SessionOut, responses={**NOT_FOUND, **CONFLICT, **TOO_LARGE}
)
def update_session(session_id: SafeStr, body: SessionUpdate, db: DbDep) -> Session:
    """Change the mode or config of a `pending` or `paused` session (409 otherwise: pause it
    first); the workflow reads them at its next step."""
    session = _get(db, session_id)
    if session.status not in (SessionStatus.PENDING, SessionStatus.PAUSED):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"cannot change a session that is {session.status}; pause it first",
        )
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "mode" in changes:
        session.mode = changes["mode"].value
    if "config" in changes:
        session.config = changes["config"]
    db.commit()
    return session


@router.delete(
    "/{session_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **CONFLICT}
)
def delete_session(session_id: SafeStr, db: DbDep) -> Response:
    """Delete a session and its steps; 409 while it is `in_progress` (cancel it first)."""
    session = _get(db, session_id)
    if session.status == SessionStatus.IN_PROGRESS:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "cannot delete a session in progress; cancel it first"
        )
    db.delete(session)
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _act(session_id: str, db: DbDep, action: str, workflows: WorkflowsDep) -> Session:
    try:
        getattr(workflows, action)(session_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"session {session_id} not found") from None
    except Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    session = db.get(Session, session_id, populate_existing=True)
    if session is None:  # deleted in between
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"session {session_id} not found")
    return session


@router.post("/{session_id}/pause", response_model=SessionOut, responses={**NOT_FOUND, **CONFLICT})
def pause_session(session_id: SafeStr, db: DbDep, workflows: WorkflowsDep) -> Session:
    """Pause a `pending` or `in_progress` session: a running step finishes, no step follows
    until it is resumed."""
    return _act(session_id, db, "pause", workflows)


@router.post("/{session_id}/resume", response_model=SessionOut, responses={**NOT_FOUND, **CONFLICT})
def resume_session(session_id: SafeStr, db: DbDep, workflows: WorkflowsDep) -> Session:
    """Resume a `paused` session (paused by `/pause`, or by `interactive` mode after a step):
    it becomes `pending` and its next step runs."""
    return _act(session_id, db, "resume", workflows)


@router.post("/{session_id}/cancel", response_model=SessionOut, responses={**NOT_FOUND, **CONFLICT})
def cancel_session(session_id: SafeStr, db: DbDep, workflows: WorkflowsDep) -> Session:
    """Cancel a `pending`, `in_progress` or `paused` session for good; a running step's answer
    is still kept."""
    return _act(session_id, db, "cancel", workflows)


@router.get("/{session_id}/steps", response_model=list[StepOut], responses=NOT_FOUND)
def list_steps(session_id: SafeStr, db: DbDep) -> list[Step]:
    """The session's steps in order, each with its status and the LLM's answer."""
    _get(db, session_id)
    return list(
        db.scalars(select(Step).where(Step.session_id == session_id).order_by(Step.position)).all()
    )
