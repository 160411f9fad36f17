"""Error answers: every one encodable and bounded, whatever the request held; database outages
are 503s, other database errors 500s that name nothing of the data."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

log = logging.getLogger("app")

# A 422 lists at most this many errors, and echoes at most ECHO_CHARS of each input: otherwise
# the answer quotes every bad value, and a large invalid body comes back several times larger.
MAX_ERRORS = 20
ECHO_CHARS = 200
LOC_CHARS = 100
MSG_CHARS = 500
# Deeper or wider than this, an echoed input is cut (the echo is truncated anyway).
_DEPTH, _ITEMS = 8, 50


def encodable(value: Any, depth: int = 0) -> Any:
    """`value` made JSON-safe: lone surrogates written out as `\\udfff` text, NaN and
    Infinity as strings, anything else as its `str`; nesting and width bounded."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _DEPTH:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())[:_ITEMS]
        return {str(encodable(k, depth + 1)): encodable(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [encodable(item, depth + 1) for item in value[:_ITEMS]]
    return encodable(str(value), depth)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def echo(value: Any) -> Any:
    """An input as a 422 shows it: itself when short, else the start of its JSON text."""
    safe = encodable(value)
    text = safe if isinstance(safe, str) else json.dumps(safe, ensure_ascii=False)
    if len(text) <= ECHO_CHARS:
        return safe
    return _cut(text, ECHO_CHARS)


def _loc_part(part: Any) -> str | int:
    return part if isinstance(part, int) else _cut(str(encodable(part)), LOC_CHARS)


def bounded_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shown = errors if len(errors) <= MAX_ERRORS else errors[: MAX_ERRORS - 1]
    out = []
    for error in shown:
        item: dict[str, Any] = {
            "type": _cut(str(error.get("type", "")), LOC_CHARS),
            "loc": [_loc_part(part) for part in error.get("loc", ())],
            "msg": _cut(str(encodable(error.get("msg", ""))), MSG_CHARS),
            "input": echo(error.get("input")),
        }
        if error.get("ctx"):
            item["ctx"] = {str(k): echo(v) for k, v in list(error["ctx"].items())[:_ITEMS]}
        out.append(item)
    if len(shown) < len(errors):
        out.append(
            {
                "type": "too_many_errors",
                "loc": [],
                "msg": f"{len(errors)} errors in all; the first {len(shown)} are listed",
                "input": None,
            }
        )
    return out


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": bounded_errors(list(exc.errors()))})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304) or exc.status_code < 200:
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = encodable(exc.detail)
    if isinstance(detail, str):
        detail = _cut(detail, MSG_CHARS)
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning(
        "Database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    return JSONResponse(
        status_code=503,
        headers={"Retry-After": "5"},
        content={"detail": "database unavailable; retry shortly"},
    )


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return await database_unavailable(request, exc)
    log.error("Database error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal error"})


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    # Connection-level failures only: a constraint violation is a bug, not an outage.
    for error in (OperationalError, PoolTimeout):
        app.add_exception_handler(error, database_unavailable)
    app.add_exception_handler(DBAPIError, database_error)
