"""Redirects that never take their host from the request.

Starlette answers `/api/v2/sessions/` with a 307 to `http://<Host header>/api/v2/sessions`: a
client (or a proxy's cache) that sends `Host: evil.example` gets a redirect to that host, the
shape of an open redirect. The API redirects only to itself, so every absolute `Location` is
made relative: its path and query (RFC 9110 allows a relative reference).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REDIRECTS = frozenset({301, 302, 303, 307, 308})


class RelativeRedirects:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def relative(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in REDIRECTS:
                message["headers"] = [
                    (name, _relative(value) if name.lower() == b"location" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, relative)


def _relative(location: bytes) -> bytes:
    parts = urlsplit(location.decode("latin-1"))
    if not parts.scheme and not parts.netloc and not parts.path.startswith("//"):
        return location
    # One leading slash: `//host/x` would be another host's address to a browser.
    path = "/" + parts.path.lstrip("/")
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")
