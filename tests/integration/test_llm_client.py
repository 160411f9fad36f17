"""The LLM client over real HTTP: each attempt ends in exactly one outcome, retries bounded."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

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
    max_answer_bytes: int = 2 * 1024 * 1024,
) -> LLMClient:
    provider = OpenAICompatible(
        name="openai",
        base_url=base_url,
        model="gpt-test",
        api_key="sk-test",
        timeout=timeout,
        max_answer_bytes=max_answer_bytes,
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


# --- a provider that trickles, or answers too much -------------------------------------------


def failed_call(base_url: str, **options: Any) -> tuple[Attempts, LLMFailed]:
    """One call that must fail, its attempts and its failure."""
    attempts = Attempts()
    client = client_for(base_url, attempts, **options)
    try:
        with pytest.raises(LLMFailed) as failed:
            client.complete(MESSAGES)
    finally:
        client.close()
    return attempts, failed.value


class Trickler:
    """A raw HTTP server that sends its answer one byte every `every` seconds: the headers
    (`part="headers"`) or the body (`part="body"`), for as long as the client listens; or
    (`part="unsized"`) a 200 kB answer with no length, ended by closing the connection."""

    def __init__(self, part: str, every: float = 0.2) -> None:
        self.part, self.every = part, every
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.closed_after: list[float] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        import time

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(
                target=self._answer, args=(conn, time.monotonic()), daemon=True
            ).start()

    def _answer(self, conn: socket.socket, started: float) -> None:
        import json
        import time

        body = json.dumps(completion("x" * (200_000 if self.part == "unsized" else 1000))).encode()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        if self.part == "bomb":  # 20 MB of JSON in about 20 kB of gzip
            import gzip

            body = gzip.compress(json.dumps(completion(" " * 20_000_000)).encode())
            head += b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(body)
            conn.recv(65536)
            with contextlib.suppress(OSError):
                conn.sendall(head + body)
            conn.close()
            return
        if self.part == "unsized":
            head += b"connection: close\r\n\r\n"
        else:
            head += b"content-length: %d\r\n\r\n" % len(body)
        conn.recv(65536)
        if self.part == "unsized":
            with contextlib.suppress(OSError):
                conn.sendall(head + body)
            conn.close()
            return
        slow, fast = (head, b"") if self.part == "headers" else (body, head)
        try:
            conn.sendall(fast)
            for byte in slow:
                conn.sendall(bytes([byte]))
                time.sleep(self.every)
        except OSError:
            self.closed_after.append(time.monotonic() - started)
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("part", ["headers", "body"])
def test_the_timeout_is_a_deadline_for_the_whole_answer(part: str) -> None:
    """A provider that sends a byte every 0.2 s never trips a 1 s idle timeout; the attempt
    ends at its 1 s deadline all the same (it ran for ever before), as a timeout."""
    import time

    server = Trickler(part)
    started = time.monotonic()
    try:
        attempts, failed = failed_call(server.base_url, timeout=1.0, max_attempts=2)
    finally:
        server.close()
    took = time.monotonic() - started
    assert attempts.outcomes == [Outcome.TIMEOUT, Outcome.TIMEOUT]
    assert "no whole answer within 1 s" in str(failed)
    assert took < 2 * 1.0 + 0.5 + 1.5  # two deadlines, the back-off between, slack


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
def test_an_answer_over_the_cap_is_refused_as_it_arrives(declared: bool) -> None:
    big = completion("x" * 200_000)
    with FakeLLM(default=Reply(body=big)) as fake:
        server = None if declared else Trickler("unsized")  # read until the cap, then dropped
        url = fake.base_url if server is None else server.base_url
        try:
            attempts, failed = failed_call(url, max_attempts=1, max_answer_bytes=65536)
        finally:
            if server is not None:
                server.close()
    assert attempts.outcomes == [Outcome.SERVER_ERROR]
    assert "answer larger than 65536 bytes (TESTBOOST_LLM_MAX_ANSWER_BYTES)" in str(failed)
    small = Attempts()
    with FakeLLM() as fake:
        client = client_for(fake.base_url, small, max_answer_bytes=65536)
        try:
            assert client.complete(MESSAGES)
        finally:
            client.close()
    assert small.outcomes == [Outcome.SUCCESS]


def test_a_compressed_answer_cannot_inflate_past_the_cap() -> None:
    server = Trickler("bomb")
    try:
        attempts, failed = failed_call(server.base_url, max_attempts=1, max_answer_bytes=65536)
    finally:
        server.close()
    assert attempts.outcomes == [Outcome.SERVER_ERROR]
    assert "answer larger than 65536 bytes" in str(failed)


def test_a_large_error_answer_keeps_its_outcome_and_retry_after() -> None:
    """Only the first kilobytes of an error are read: a 429 with a 3 MB body is still a rate
    limit whose Retry-After is honoured, not an answer over the cap."""
    error = {"error": {"type": "rate_limit_exceeded", "message": "x" * 3_000_000}}
    with FakeLLM() as fake:
        fake.then(Reply(status=429, body=error, headers={"retry-after": "0"}))
        attempts = Attempts()
        client = client_for(fake.base_url, attempts, max_answer_bytes=65536)
        try:
            assert client.complete(MESSAGES)
        finally:
            client.close()
    assert attempts.outcomes == [Outcome.RATE_LIMIT, Outcome.SUCCESS]


def test_closing_the_provider_ends_an_attempt_in_flight_at_once() -> None:
    """Shutdown does not wait for an attempt's deadline: the caller gets its failure."""
    import time

    server = Trickler("body", every=0.5)
    provider = OpenAICompatible(
        name="openai",
        base_url=server.base_url,
        model="m",
        api_key=None,
        timeout=60,
        max_answer_bytes=65536,
    )
    failures: list[Exception] = []

    def call() -> None:
        try:
            provider.complete_once(MESSAGES)
        except Exception as exc:
            failures.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(1)
    started = time.monotonic()
    provider.close()
    caller.join(timeout=10)
    server.close()
    assert not caller.is_alive() and time.monotonic() - started < 6
    assert len(failures) == 1 and "cancelled" in str(failures[0])
