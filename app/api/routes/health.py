"""GET /health: is the API able to serve? The database is the one dependency checked."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app.core.db import check_database

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    responses={503: {"description": "A dependency is failing; `checks` names it"}},
)
def health(request: Request) -> JSONResponse:
    started = time.perf_counter()
    try:
        check_database(request.app.state.engine)
        database = {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    except SQLAlchemyError as exc:
        # The driver's error class says enough (refused, timeout…) without leaking the URL.
        cause = getattr(exc, "orig", None) or exc
        database = {"status": "failing", "error": f"database unreachable ({type(cause).__name__})"}
    healthy = database["status"] == "ok"
    return JSONResponse(
        status_code=200 if healthy else 503,
        content={"status": "healthy" if healthy else "unhealthy", "checks": {"database": database}},
    )
