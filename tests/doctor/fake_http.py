"""A tiny HTTP server answering canned responses by path, for checks against services that
do not run here (Grafana) or states hard to produce live (a rule in error)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Handler = Callable[[dict[str, list[str]]], Reply]


@dataclass
class FakeServer:
    """`routes` maps a path to a reply (status, JSON-able body or str[, headers]) or to a
    function of the query parameters returning one. A path ending in `*` answers every path
    it starts (the rest of the path is the function's parameter `*`, e.g. a trace id).
    Unknown paths answer 404."""

    routes: dict[str, Reply | Handler] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __enter__(self) -> FakeServer:
        fake = self

        class Handler_(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append((url.path, dict(self.headers)))
                params = parse_qs(url.query)
                route = fake.routes.get(url.path)
                for prefix, under in fake.routes.items():
                    if route is None and prefix.endswith("*") and url.path.startswith(prefix[:-1]):
                        route, params["*"] = under, [url.path[len(prefix) - 1 :]]
                route = route or (404, {"message": "not found"})
                reply = route(params) if callable(route) else route
                status, body, *rest = reply
                headers = rest[0] if rest else {}
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                content_type = "text/plain" if isinstance(body, str) else "application/json"
                self.send_header("Content-Type", content_type)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler_)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
