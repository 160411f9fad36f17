"""What a check's probe raises instead of returning an Outcome; the context's client raises the
first two too. Below every other doctor module, so that none of them imports another back."""

from __future__ import annotations


class Failed(Exception):
    """Raised by a check's probe: the check fails, the message is its detail."""


class Unreachable(Failed):
    """A component did not answer at all: the check fails with that component's hint."""

    def __init__(self, message: str, component: str | None = None) -> None:
        super().__init__(message)
        self.component = component


class Skipped(Exception):
    """Raised by a probe when its check does not apply (e.g. the agent checks in pull mode)."""
