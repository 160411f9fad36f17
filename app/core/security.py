"""API key checks and the loopback guard for key-less deployments."""

from __future__ import annotations

import ipaddress
import secrets

from fastapi import HTTPException, Request, status
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.limits import send_json


def presented_key(request: Request) -> str | None:
    """The key from `X-API-Key`, or from `Authorization: Bearer`."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


def key_matches(presented: str | None, expected: SecretStr) -> bool:
    # Constant time: the comparison must not reveal how much of a guess was right.
    candidate = (presented or "").encode()
    return secrets.compare_digest(candidate, expected.get_secret_value().encode())


def require_api_key(request: Request) -> None:
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
