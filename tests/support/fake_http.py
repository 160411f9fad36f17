"""The HTTP server every fake here runs on: pytest-httpserver, threaded (a slow answer does not
hold the others), quiet, and quick to stop."""

from __future__ import annotations

import logging

from pytest_httpserver import HTTPServer

# Werkzeug logs every request at INFO: noise in the output of the tests that print.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


class FakeHTTPServer(HTTPServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port, threaded=True)

    def thread_target(self) -> None:
        assert self.server is not None
        # The default 0.5 s poll makes each stop take that long; tests start hundreds.
        self.server.serve_forever(poll_interval=0.05)

    @property
    def root(self) -> str:
        """http://host:port, without a trailing slash."""
        return self.url_for("/").rstrip("/")
