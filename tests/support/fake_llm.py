"""A real OpenAI-compatible HTTP server (on 127.0.0.1 by default) whose answers the test scripts."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response

from tests.support.fake_http import FakeHTTPServer


@dataclass
class Reply:
    status: int = 200
    # dict → JSON; str → raw text; None → a chat completion; a function of the recorded request
    # (path, body, authorization) → one of those
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "fake",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
    }


class FakeLLM:
    """Plays scripted replies in order, then `default` forever. Records every request."""

    def __init__(self, default: Reply | None = None, host: str = "127.0.0.1") -> None:
        """`host`: the address to listen on (a container network's gateway for a containerised
        API to reach it)."""
        self.default = default or Reply()
        self.script: deque[Reply] = deque()
        # As they arrive, not as they are answered (the server's own log): calls in flight count.
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        # Cleared: every answer waits (after its delay) until it is set again; requests are
        # still recorded as they arrive. For calls kept in flight as long as a test needs.
        self.answering = threading.Event()
        self.answering.set()
        self.server = FakeHTTPServer(host)
        self.server.expect_request(re.compile(".*"), method="POST").respond_with_handler(
            self._answer
        )

    def _answer(self, http: Request) -> Response:
        request = {
            "path": http.path,
            "body": json.loads(http.get_data() or b"{}"),
            "authorization": http.headers.get("authorization"),
        }
        with self.lock:
            self.requests.append(request)
            reply = self.script.popleft() if self.script else self.default
        if reply.delay:
            time.sleep(reply.delay)
        self.answering.wait()
        answer = reply.body(request) if callable(reply.body) else reply.body
        if answer is None:
            answer = completion(f"answer {self.count}")
        content = answer if isinstance(answer, str) else json.dumps(answer)
        return Response(content, reply.status, reply.headers, content_type="application/json")

    @property
    def base_url(self) -> str:
        return self.server.url_for("/v1")

    def __enter__(self) -> FakeLLM:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.answering.set()
        self.server.stop()

    def then(self, *replies: Reply) -> FakeLLM:
        with self.lock:
            self.script.extend(replies)
        return self

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)
