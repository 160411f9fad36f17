"""LLM providers: an OpenAI-compatible HTTP server, or an offline simulation.

A provider makes exactly one attempt per call and raises `AttemptFailed` with its outcome;
retries live in `client.LLMClient`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import random
import re
import threading
import zlib
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from app.llm.outcomes import AttemptFailed, Outcome, outcome_for_status

Message = dict[str, str]
# What is read of an error answer: enough for its error type, whatever its size.
ERROR_BODY_BYTES = 64 * 1024
# How long closing waits for the provider's loop, and how far past its deadline a caller waits.
CLOSE_WAIT_S = 5.0


class Provider(Protocol):
    name: str
    model: str

    def complete_once(self, messages: list[Message]) -> str: ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class OpenAICompatible:
    """`POST {base_url}/chat/completions`: OpenAI, vLLM, Ollama, LM Studio and most proxies.

    `timeout` is a deadline for the whole attempt (connect, headers, body), not an idle
    timer: a server that trickles a byte a second used to keep a step running for ever. An
    answer larger than `max_answer_bytes` is refused as it arrives. Requests run on an event
    loop of the provider's own, where a deadline cancels a read however slow it is; callers
    (workflow threads) wait for their attempt."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        model: str,
        api_key: str | None,
        timeout: float,
        max_answer_bytes: int,
    ) -> None:
        self.name = name
        self.model = model
        self._api_key = api_key
        self._deadline = timeout
        self._max_bytes = max_answer_bytes
        headers = {"Accept-Encoding": "gzip, deflate"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"llm-{name}", daemon=True
        )
        self._thread.start()

    def complete_once(self, messages: list[Message]) -> str:
        try:
            attempt = asyncio.run_coroutine_threadsafe(self._attempt(messages), self._loop)
            # The deadline ends the attempt on the loop; the margin only guards against a loop
            # that stopped answering.
            return attempt.result(timeout=self._deadline + CLOSE_WAIT_S)
        except (concurrent.futures.CancelledError, RuntimeError) as exc:  # closed under us
            raise AttemptFailed(Outcome.CONNECTION, "cancelled: the provider closed") from exc
        except concurrent.futures.TimeoutError as exc:
            attempt.cancel()
            detail = f"no whole answer within {self._deadline:g} s"
            raise AttemptFailed(Outcome.TIMEOUT, detail) from exc

    async def _attempt(self, messages: list[Message]) -> str:
        request = {"model": self.model, "messages": messages}
        try:
            async with (
                asyncio.timeout(self._deadline),
                self._http.stream("POST", "/chat/completions", json=request) as response,
            ):
                status, headers = response.status_code, response.headers
                if outcome_for_status(status) is Outcome.SUCCESS:
                    body = await self._read(response)
                else:  # only its error type is read, from its first kilobytes
                    body = await self._read(response, ERROR_BODY_BYTES, truncate=True)
        except TimeoutError as exc:  # the deadline, or one of httpx's own timeouts
            detail = f"no whole answer within {self._deadline:g} s ({type(exc).__name__})"
            raise AttemptFailed(Outcome.TIMEOUT, detail) from exc
        except httpx.TimeoutException as exc:
            detail = f"no answer in time ({type(exc).__name__})"
            raise AttemptFailed(Outcome.TIMEOUT, detail) from exc
        except httpx.TransportError as exc:
            raise AttemptFailed(Outcome.CONNECTION, f"{type(exc).__name__}: {exc}") from exc
        outcome = outcome_for_status(status)
        if outcome is not Outcome.SUCCESS:
            raise AttemptFailed(
                outcome,
                self._classified(status, body),
                retry_after=parse_retry_after(headers.get("retry-after")),
            )
        return _content(body)

    async def _read(
        self, response: httpx.Response, limit: int | None = None, *, truncate: bool = False
    ) -> bytes:
        """The body, at most `limit` bytes (the cap) as sent and as decoded: refused as soon
        as it is known to be larger, or cut there (`truncate`). Read raw and decoded here, with
        a bounded output per chunk, so that a compressed answer cannot inflate past it."""
        limit = self._max_bytes if limit is None else limit
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit and not truncate:
            raise self._too_large()
        decoder = _decoder(response.headers.get("content-encoding", ""))
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += decoder.decompress(chunk, limit + 1 - len(body)) if decoder else chunk
            if len(body) > limit or (decoder and decoder.unconsumed_tail):
                if truncate:
                    return bytes(body[:limit])
                raise self._too_large()
        return bytes(body)

    def _too_large(self) -> AttemptFailed:
        return AttemptFailed(
            Outcome.SERVER_ERROR,
            f"answer larger than {self._max_bytes} bytes (TESTBOOST_LLM_MAX_ANSWER_BYTES)",
        )

    def _classified(self, status: int, body: bytes) -> str:
        """`HTTP 401 (invalid_api_key)`: the status and the error type the body names, nothing
        else of the body, which may quote our request and its Authorization header."""
        kind = _error_type(body)
        if kind and self._api_key and self._api_key in kind:
            kind = None
        return f"HTTP {status}" + (f" ({kind})" if kind else "")

    def close(self) -> None:
        """Cancel attempts in flight (their callers get AttemptFailed at once, not at their
        deadline: shutdown waits for no provider), close the connections, stop the loop."""
        if self._loop.is_closed():
            return
        closing = asyncio.run_coroutine_threadsafe(self._shut(), self._loop)
        with contextlib.suppress(Exception):
            closing.result(timeout=CLOSE_WAIT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CLOSE_WAIT_S)
        if not self._thread.is_alive():
            self._loop.close()

    async def _shut(self) -> None:
        attempts = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in attempts:
            task.cancel()
        # Let each unwind (close its response) before the loop stops: a task left pending
        # would leave its caller waiting for its deadline.
        if attempts:
            await asyncio.wait(attempts, timeout=CLOSE_WAIT_S / 2)
        await self._http.aclose()


def _decoder(encoding: str) -> Any:
    """A zlib decompressor for gzip or deflate, None for an unencoded body. Others are not
    asked for (Accept-Encoding), and refused."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise AttemptFailed(Outcome.SERVER_ERROR, f"answer in an encoding not asked for: {encoding}")


# An error type as OpenAI-compatible servers name them (`invalid_api_key`,
# `rate_limit_exceeded`): lower-case words, no digits, so no key or token passes for one.
_ERROR_TYPE = re.compile(r"[a-z]+(?:_[a-z]+)*")


def _error_type(payload: bytes) -> str | None:
    """`error.code` or `error.type` of an OpenAI-style error body, if it is a plain name."""
    try:
        body: Any = json.loads(payload)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    for field in ("code", "type"):
        value = error.get(field)
        if isinstance(value, str) and len(value) <= 40 and _ERROR_TYPE.fullmatch(value):
            return value
    return None


def _content(payload: bytes) -> str:
    # A 200 that is not a chat completion is the server's fault, and may pass on a retry.
    # The body is not quoted: like an error body, it may echo our request.
    try:
        body: Any = json.loads(payload)
        content = body["choices"][0]["message"]["content"]
    except ValueError as exc:
        raise AttemptFailed(Outcome.SERVER_ERROR, "malformed completion: not JSON") from exc
    except (KeyError, IndexError, TypeError) as exc:
        raise AttemptFailed(
            Outcome.SERVER_ERROR, "malformed completion: no choices[0].message.content"
        ) from exc
    if not isinstance(content, str):
        raise AttemptFailed(Outcome.SERVER_ERROR, "completion content is not text")
    return storable(content)


def storable(text: str) -> str:
    """Text as both databases store it: NUL (PostgreSQL refuses it) and lone surrogates (no
    UTF-8 for them) become U+FFFD."""
    return (
        text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").replace("\x00", "\ufffd")
    )


class Simulated:
    """Offline provider for `make run` and demos: canned answers after a latency, with
    rate limits and errors injected at the configured ratios."""

    name = "simulated"

    def __init__(
        self,
        *,
        model: str,
        latency: float,
        error_ratio: float,
        rate_limit_ratio: float,
        seed: int | None = None,
    ) -> None:
        self.model = model
        self._latency = latency
        self._error_ratio = error_ratio
        self._rate_limit_ratio = rate_limit_ratio
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def complete_once(self, messages: list[Message]) -> str:
        with self._lock:
            draw = self._random.random()
        if self._latency:
            threading.Event().wait(self._latency)
        if draw < self._rate_limit_ratio:
            raise AttemptFailed(Outcome.RATE_LIMIT, "simulated 429", retry_after=0.0)
        if draw < self._rate_limit_ratio + self._error_ratio:
            raise AttemptFailed(Outcome.SERVER_ERROR, "simulated 500")
        prompt = messages[-1]["content"] if messages else ""
        first_line = prompt.splitlines()[0] if prompt else ""
        return f"[simulated {self.model}] Done: {first_line[:160]}"

    def close(self) -> None:
        pass
