"""GET /health: is the API able to serve? The database is the one dependency checked."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app.core.db import check_database
from app.schemas import HealthResponse

router = APIRouter(tags=["health"])


# The handler builds its JSONResponse itself; the model only documents it.
@router.get(
    "/health",
    response_model=HealthResponse,
    responses={
        503: {"model": HealthResponse, "description": "A dependency is failing; `checks` names it"}
    },
)
def health(request: Request) -> JSONResponse:
    """Whether the API can serve: the database is checked. No API key needed; for load
    balancers and probes."""
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
