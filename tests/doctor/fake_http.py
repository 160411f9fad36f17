"""A tiny HTTP server answering canned responses by path, for checks against services that
do not run here (Grafana) or states hard to produce live (a rule in error)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from werkzeug import Request, Response
from werkzeug.datastructures import Headers

from tests.support.fake_http import FakeHTTPServer

Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Handler = Callable[[dict[str, list[str]]], Reply]
NOT_FOUND: Reply = (404, {"message": "not found"})


class FakeServer:
    """`routes` maps a path to a reply (status, JSON-able body or str[, headers]) or to a
    function of the query parameters returning one. A path ending in `*` answers every path
    it starts (the rest of the path is the function's parameter `*`, e.g. a trace id).
    Unknown paths answer 404."""

    def __init__(self, routes: dict[str, Reply | Handler] | None = None) -> None:
        self.routes = routes or {}
        self.server = FakeHTTPServer()

    def __enter__(self) -> FakeServer:
        # The first handler that matches answers: exact paths, then prefixes, then 404.
        expect = self.server.expect_request
        for path, route in self.routes.items():
            if not path.endswith("*"):
                expect(path).respond_with_handler(partial(answer, route=route))
        for path, route in self.routes.items():
            if path.endswith("*"):
                prefix = path[:-1]
                expect(re.compile(re.escape(prefix))).respond_with_handler(
                    partial(answer, route=route, prefix=prefix)
                )
        expect(re.compile("")).respond_with_handler(partial(answer, route=NOT_FOUND))
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.root

    @property
    def requests(self) -> list[tuple[str, Headers]]:
        """(path, headers) of every request answered, in order."""
        return [(request.path, request.headers) for request, _ in self.server.log]


def answer(request: Request, route: Reply | Handler, prefix: str | None = None) -> Response:
    params = request.args.to_dict(flat=False)
    if prefix is not None:
        params["*"] = [request.path[len(prefix) :]]
    status, body, *rest = route(params) if callable(route) else route
    text = isinstance(body, str)
    response = Response(body if text else json.dumps(body), status)
    response.headers["Content-Type"] = "text/plain" if text else "application/json"
    response.headers.update(rest[0] if rest else {})
    return response
