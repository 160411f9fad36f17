"""How an LLM attempt ended: exactly one outcome per attempt, shared by client and telemetry
(the set is the metrics contract's, telemetry/catalog.py)."""

from __future__ import annotations

from telemetry.catalog import LLMOutcome as Outcome

# Auth and invalid requests fail the same way every time: retrying only burns quota.
NOT_RETRYABLE = frozenset({Outcome.SUCCESS, Outcome.AUTH, Outcome.INVALID_REQUEST})


def retryable(outcome: Outcome) -> bool:
    return outcome not in NOT_RETRYABLE


def outcome_for_status(status_code: int) -> Outcome:
    """Classify an HTTP answer from an OpenAI-compatible server."""
    if status_code < 400:
        return Outcome.SUCCESS
    if status_code == 429:
        return Outcome.RATE_LIMIT
    if status_code in (401, 403):
        return Outcome.AUTH
    if status_code == 408:
        return Outcome.TIMEOUT
    if status_code < 500:
        return Outcome.INVALID_REQUEST
    return Outcome.SERVER_ERROR


class AttemptFailed(Exception):
    """One attempt failed; `retry_after` is the server's hint in seconds, if it gave one."""

    def __init__(self, outcome: Outcome, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{outcome.value}: {detail}")
        self.outcome = outcome
        self.detail = detail
        self.retry_after = retry_after


class LLMFailed(Exception):
    """Every attempt failed; the last failure says why."""

    def __init__(self, last: AttemptFailed, attempts: int) -> None:
        super().__init__(f"LLM call failed after {attempts} attempt(s): {last}")
        self.last = last
        self.attempts = attempts
