"""The LLM client: bounded retries over a provider, each attempt reported exactly once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import trace

from app.core.config import SIMULATED, Settings
from app.llm.outcomes import AttemptFailed, LLMFailed, Outcome, retryable
from app.llm.providers import Message, OpenAICompatible, Provider, Simulated

log = logging.getLogger(__name__)

# (provider, model, outcome, seconds): the single place an LLM attempt becomes telemetry.
AttemptHook = Callable[[str, str, Outcome, float], None]


@dataclass(frozen=True)
class Completion:
    text: str
    attempts: int


class LLMClient:
    def __init__(
        self,
        provider: Provider,
        *,
        max_attempts: int,
        max_retry_wait: float,
        on_attempt: AttemptHook,
        tracer: trace.Tracer | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.provider = provider
        self._max_attempts = max_attempts
        self._max_retry_wait = max_retry_wait
        self._on_attempt = on_attempt
        self._tracer = tracer or trace.NoOpTracer()
        self._stop = stop or threading.Event()

    def complete(self, messages: list[Message]) -> Completion:
        last: AttemptFailed | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                text = self._attempt(messages)
            except AttemptFailed as failure:
                last = failure
                log.warning("LLM attempt %d/%d failed: %s", attempt, self._max_attempts, failure)
                if not retryable(failure.outcome) or attempt == self._max_attempts:
                    break
                # Shutting down: stop retrying; the step stays unfinished and resumes later.
                if self._stop.wait(self._delay(failure, attempt)):
                    break
                continue
            return Completion(text=text, attempts=attempt)
        assert last is not None
        raise LLMFailed(last, attempt)

    def _attempt(self, messages: list[Message]) -> str:
        """One attempt: its span, its outcome reported exactly once."""
        provider, model = self.provider.name, self.provider.model
        with self._tracer.start_as_current_span(
            "llm.chat",
            kind=trace.SpanKind.CLIENT,
            attributes={"gen_ai.system": provider, "gen_ai.request.model": model},
        ) as span:
            started = time.perf_counter()
            outcome = Outcome.SUCCESS
            try:
                return self.provider.complete_once(messages)
            except AttemptFailed as failure:
                outcome = failure.outcome
                span.set_status(trace.Status(trace.StatusCode.ERROR, failure.detail[:200]))
                raise
            finally:
                span.set_attribute("testboost.llm.outcome", outcome.value)
                self._on_attempt(provider, model, outcome, time.perf_counter() - started)

    def _delay(self, failure: AttemptFailed, attempt: int) -> float:
        if failure.retry_after is not None:
            return min(failure.retry_after, self._max_retry_wait)
        return min(0.5 * 2 ** (attempt - 1), self._max_retry_wait)

    def close(self) -> None:
        self.provider.close()


def make_provider(settings: Settings) -> Provider:
    name = settings.resolved_llm_provider
    if name == SIMULATED:
        return Simulated(
            model=settings.llm_model,
            latency=settings.llm_sim_latency,
            error_ratio=settings.llm_sim_error_ratio,
            rate_limit_ratio=settings.llm_sim_rate_limit_ratio,
        )
    assert settings.llm_base_url is not None  # enforced by Settings
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return OpenAICompatible(
        name=name,
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=key,
        timeout=settings.llm_timeout,
        max_answer_bytes=settings.llm_max_answer_bytes,
    )
