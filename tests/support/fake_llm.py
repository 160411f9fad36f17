"""A real OpenAI-compatible HTTP server (on 127.0.0.1 by default) whose answers the test scripts."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        # Cleared: every answer waits (after its delay) until it is set again; requests are
        # still recorded as they arrive. For calls kept in flight as long as a test needs.
        self.answering = threading.Event()
        self.answering.set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                request = {
                    "path": self.path,
                    "body": body,
                    "authorization": self.headers.get("authorization"),
                }
                with fake.lock:
                    fake.requests.append(request)
                    reply = fake.script.popleft() if fake.script else fake.default
                if reply.delay:
                    time.sleep(reply.delay)
                fake.answering.wait()
                answer = reply.body(request) if callable(reply.body) else reply.body
                if answer is None:
                    content = json.dumps(completion(f"answer {len(fake.requests)}")).encode()
                elif isinstance(answer, str):
                    content = answer.encode()
                else:
                    content = json.dumps(answer).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(content)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.answering.set()
        self.server.shutdown()
        self.server.server_close()

    def then(self, *replies: Reply) -> FakeLLM:
        with self.lock:
            self.script.extend(replies)
        return self

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)
