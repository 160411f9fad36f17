"""The LLM client over real HTTP: each attempt ends in exactly one outcome, retries bounded."""

from __future__ import annotations

import socket
import threading

import pytest

from app.llm.client import LLMClient
from app.llm.outcomes import LLMFailed, Outcome
from app.llm.providers import OpenAICompatible, parse_retry_after
from tests.support.fake_llm import FakeLLM, Reply, completion

MESSAGES = [{"role": "user", "content": "hello"}]


class Attempts(list[tuple[str, str, Outcome, float]]):
    def __call__(self, provider: str, model: str, outcome: Outcome, seconds: float) -> None:
        self.append((provider, model, outcome, seconds))

    @property
    def outcomes(self) -> list[Outcome]:
        return [a[2] for a in self]


def client_for(
    base_url: str,
    attempts: Attempts,
    *,
    timeout: float = 5.0,
    max_attempts: int = 3,
    stop: threading.Event | None = None,
) -> LLMClient:
    provider = OpenAICompatible(
        name="openai", base_url=base_url, model="gpt-test", api_key="sk-test", timeout=timeout
    )
    return LLMClient(
        provider, max_attempts=max_attempts, max_retry_wait=2.0, on_attempt=attempts, stop=stop
    )


@pytest.fixture
def fake() -> FakeLLM:
    with FakeLLM() as server:
        yield server


def test_success_sends_an_openai_request(fake: FakeLLM) -> None:
    attempts = Attempts()
    completion = client_for(fake.base_url, attempts).complete(MESSAGES)
    assert completion.text == "answer 1" and completion.attempts == 1
    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"] == {"model": "gpt-test", "messages": MESSAGES}
    assert request["authorization"] == "Bearer sk-test"
    assert attempts.outcomes == [Outcome.SUCCESS]
    assert attempts[0][:2] == ("openai", "gpt-test") and attempts[0][3] > 0


def test_429_honours_retry_after_then_succeeds(fake: FakeLLM) -> None:
    fake.then(Reply(429, {"error": "slow down"}, {"Retry-After": "0.3"}))
    attempts = Attempts()
    completion = client_for(fake.base_url, attempts).complete(MESSAGES)
    assert completion.attempts == 2 and fake.count == 2
    assert attempts.outcomes == [Outcome.RATE_LIMIT, Outcome.SUCCESS]


@pytest.mark.parametrize(
    "reply,outcome",
    [
        (Reply(500, {"error": "boom"}), Outcome.SERVER_ERROR),
        (Reply(503, "upstream down"), Outcome.SERVER_ERROR),
        (Reply(200, "this is not json"), Outcome.SERVER_ERROR),
        (Reply(200, {"choices": []}), Outcome.SERVER_ERROR),
        (Reply(429, {}, {"Retry-After": "0"}), Outcome.RATE_LIMIT),
    ],
)
def test_retryable_failures_are_retried_then_give_up(
    fake: FakeLLM, reply: Reply, outcome: Outcome
) -> None:
    fake.default = reply
    attempts = Attempts()
    client = client_for(fake.base_url, attempts, max_attempts=3)
    client._delay = lambda failure, attempt: 0.0  # type: ignore[method-assign]
    with pytest.raises(LLMFailed) as failed:
        client.complete(MESSAGES)
    assert failed.value.attempts == 3 and failed.value.last.outcome is outcome
    assert attempts.outcomes == [outcome] * 3 and fake.count == 3


@pytest.mark.parametrize(
    "status,outcome",
    [
        (401, Outcome.AUTH),
        (403, Outcome.AUTH),
        (400, Outcome.INVALID_REQUEST),
        (404, Outcome.INVALID_REQUEST),
    ],
)
def test_client_errors_are_not_retried(fake: FakeLLM, status: int, outcome: Outcome) -> None:
    fake.default = Reply(status, {"error": "no"})
    attempts = Attempts()
    with pytest.raises(LLMFailed) as failed:
        client_for(fake.base_url, attempts).complete(MESSAGES)
    assert failed.value.attempts == 1 and attempts.outcomes == [outcome] and fake.count == 1


def test_timeout_is_its_own_outcome(fake: FakeLLM) -> None:
    fake.default = Reply(delay=1.0)
    attempts = Attempts()
    with pytest.raises(LLMFailed):
        client_for(fake.base_url, attempts, timeout=0.2, max_attempts=2).complete(MESSAGES)
    assert attempts.outcomes == [Outcome.TIMEOUT, Outcome.TIMEOUT]


def test_connection_refused_is_a_connection_outcome() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    attempts = Attempts()
    with pytest.raises(LLMFailed) as failed:
        client_for(f"http://127.0.0.1:{port}/v1", attempts, max_attempts=2).complete(MESSAGES)
    assert attempts.outcomes == [Outcome.CONNECTION] * 2
    assert failed.value.last.outcome is Outcome.CONNECTION


def test_retry_wait_is_capped_and_interrupted_by_shutdown(fake: FakeLLM) -> None:
    fake.default = Reply(429, {}, {"Retry-After": "3600"})
    stop = threading.Event()
    attempts = Attempts()
    client = client_for(fake.base_url, attempts, max_attempts=5, stop=stop)
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(LLMFailed):
        client.complete(MESSAGES)  # would wait 2 s (the cap) per retry; stop ends it early
    assert attempts.outcomes == [Outcome.RATE_LIMIT]


@pytest.mark.parametrize(
    "header,expected",
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        (None, None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_failures_name_the_status_and_error_type_never_the_body(fake: FakeLLM) -> None:
    """Providers and proxies quote the request, Authorization header included, in error
    bodies: a failure keeps only the status and a plain error type."""
    quoted = "Incorrect API key provided: Bearer sk-test"
    fake.then(
        Reply(401, {"error": {"message": quoted, "type": "invalid_request_error"}}),
        Reply(500, {"error": {"message": quoted, "code": "sk-test"}}),  # not a plain name
        Reply(502, f"<html>{quoted}</html>"),
        Reply(200, quoted),
    )
    details = []
    for _ in range(4):
        with pytest.raises(LLMFailed) as failed:
            client_for(fake.base_url, Attempts(), max_attempts=1).complete(MESSAGES)
        details.append(str(failed.value))
    assert all("sk-test" not in d and "Incorrect" not in d for d in details), details
    assert "auth: HTTP 401 (invalid_request_error)" in details[0]
    assert details[1].endswith("server_error: HTTP 500") and details[2].endswith("HTTP 502")
    assert details[3].endswith("malformed completion: not JSON")


def test_completions_are_stored_as_text_both_databases_take(fake: FakeLLM) -> None:
    fake.default = Reply(200, completion("a\x00b\udfffc"))
    text = client_for(fake.base_url, Attempts()).complete(MESSAGES).text
    assert text.startswith("a\ufffdb") and text.endswith("c")
    assert "\x00" not in text and text.encode("utf-8")
