"""Polling helpers with a deadline: tests wait for background workflows, never sleep blindly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.testclient import TestClient

T = TypeVar("T")


def until(
    check: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def session_in(
    client: TestClient,
    session_id: str,
    *statuses: str,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/v2/sessions/{session_id}", headers=headers).json()
        return body if body["status"] in statuses else None

    return until(check, timeout, message=f"session {session_id} in {statuses}")
