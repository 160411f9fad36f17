"""API key checks and the loopback guard for key-less deployments."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Annotated

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.limits import send_json
from telemetry.exporters import HTTP_WHITESPACE, bearer_token


def presented_key(request: Request) -> bytes | None:
    """The key from `X-API-Key`, or from `Authorization: Bearer` (the rule /metrics applies to
    its token), as the bytes sent. The same whitespace rule for both: HTTP's optional
    whitespace (spaces, tabs) around it is dropped."""
    key = request.headers.get("x-api-key", "").strip(HTTP_WHITESPACE)
    if not key:
        return bearer_token(request.headers.get("authorization", ""))
    # Header values reach us decoded as Latin-1: encoding back gives the bytes on the wire.
    return key.encode("latin-1")


def key_matches(presented: bytes | None, expected: SecretStr) -> bool:
    # Constant time: the comparison must not reveal how much of a guess was right. Keys are
    # UTF-8 on the wire, whatever characters they hold.
    return secrets.compare_digest(presented or b"", expected.get_secret_value().encode("utf-8"))


# The two ways to present the key, declared in the OpenAPI document: /docs gets its Authorize
# button and generated clients know the key. They only declare: `presented_key` reads the
# headers itself, with one whitespace rule for both.
API_KEY_SCHEME = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="The API key (TESTBOOST_API_KEY) in the X-API-Key header.",
    auto_error=False,
)
BEARER_SCHEME = HTTPBearer(
    scheme_name="Bearer",
    description="The API key (TESTBOOST_API_KEY) as a bearer token.",
    auto_error=False,
)


def require_api_key(
    request: Request,
    _api_key: Annotated[str | None, Security(API_KEY_SCHEME)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)],
) -> None:
    """Dependency guarding every route but /health, /metrics and the docs."""
    expected: SecretStr | None = request.app.state.settings.api_key
    if expected is None:
        return
    if not key_matches(presented_key(request), expected):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key: send X-API-Key or Authorization: Bearer",
            headers={"WWW-Authenticate": "Bearer"},
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LoopbackOnly:
    """Without an API key the API answers only connections made to a loopback address,
    however the server was started (e.g. `uvicorn --host 0.0.0.0`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "http" or server is None or is_loopback(str(server[0])):
            await self.app(scope, receive, send)
            return
        await send_json(
            send, 403, "TESTBOOST_API_KEY is unset, so this API serves loopback clients only"
        )
