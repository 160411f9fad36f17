"""The guide's Docker Compose stack, brought up with the guide's command lines on the Docker
engine, with the stand-in images (tests/deploy/docker.py) and a fake LLM provider the API
container reaches on the compose network's gateway."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.deploy.docker import (
    NETWORK,
    PROJECT,
    STANDINS,
    compose,
    docker,
    environment,
    ok,
    services,
)
from tests.e2e.helpers import LLM_ENV, Prometheus, Workload, fake_llm
from tests.support.fake_llm import FakeLLM

URLS = {
    "api": "http://127.0.0.1:8000",
    "prometheus": "http://127.0.0.1:9090",
    "alertmanager": "http://127.0.0.1:9093",
    "otlp-agent": "http://127.0.0.1:13133/status",
    "jaeger": "http://127.0.0.1:16686",
}


@dataclass
class ComposeStack:
    """A running compose project; `urls` and `api_key` as tests.e2e.helpers expects."""

    files: tuple[str, ...]
    services: tuple[str, ...]
    env: dict[str, str]
    api_key: str
    fake: FakeLLM
    urls: dict[str, str] = field(default_factory=lambda: dict(URLS))

    def compose(self, *args: str, **env: str) -> str:
        return ok(compose(self.files, *args, env=self.env | env))

    def up(self, **env: str) -> None:
        """The guide's `up -d` (Grafana left out), then every service healthy."""
        self.compose("up", "-d", *self.services, **env)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 180) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = services(self.files, self.env)
            if set(rows) >= set(self.services) and all(
                rows[s]["State"] == "running" and rows[s]["Health"] in ("healthy", "")
                for s in self.services
            ):
                return rows
            if time.monotonic() > deadline:
                logs = compose(self.files, "logs", "--tail", "20", env=self.env).stdout
                raise AssertionError(f"not every service healthy: {rows}\n{logs}")
            time.sleep(1)


def gateway() -> str:
    """The host's address on the compose network, which its containers can reach."""
    address = ok(docker("network", "inspect", NETWORK, "-f", "{{(index .IPAM.Config 0).Gateway}}"))
    return address.strip()


@contextmanager
def compose_stack(
    files: tuple[str, ...], service_names: tuple[str, ...], workdir: Path, **extra_env: str
) -> Iterator[ComposeStack]:
    """From nothing (no project, no network), as the guide starts: `docker network create`,
    then `up -d`; everything removed at the end (`down -v`, the network). Under a project
    name of the tests' own, so that an operator's `testboost` stack on this engine is never
    removed: it makes the tests fail on its container names and ports instead."""
    env = environment(COMPOSE_PROJECT_NAME=PROJECT, **STANDINS)
    _remove(files, env)
    ok(docker("network", "create", NETWORK))  # the guide's first step
    key = secrets.token_hex(24)  # as docs/setup.md makes it
    try:
        with fake_llm(host=gateway()) as fake:
            settings = {"TESTBOOST_LLM_BASE_URL": fake.base_url, **LLM_ENV}
            env_file = workdir / "testboost.env"
            env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
            env |= {"TESTBOOST_API_KEY": key, "TESTBOOST_ENV_FILE": str(env_file), **extra_env}
            stack = ComposeStack(files, service_names, env, key, fake)
            stack.up()  # builds the API's image from this checkout (pull_policy: build)
            wait_api(stack)
            yield stack
    finally:
        _remove(files, env)


def wait_api(stack: ComposeStack, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{stack.urls['api']}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the API's published port does not answer"
        time.sleep(0.5)


def _remove(files: tuple[str, ...], env: dict[str, str]) -> None:
    compose(files, "down", "-v", "--remove-orphans", env=env | {"TESTBOOST_API_KEY": "-"})
    docker("network", "rm", NETWORK)  # refused, harmlessly, while another stack uses it


def assert_counts(prometheus: Prometheus, workload: Workload, fake: FakeLLM) -> None:
    """Every counter and histogram count in Prometheus against what the workload and the fake
    provider saw (the stack is new: the totals are the run's increase)."""
    calls = fake.count
    assert calls > workload.sessions  # retries on 429 and 500 make more calls than steps
    expected = {
        "sum(testboost_llm_calls_total)": calls,
        "sum(testboost_llm_request_duration_seconds_count)": calls,
        "sum(testboost_llm_rate_limit_total)": workload.rate_limits,
        "sum(testboost_llm_errors_total)": workload.errors,
        'sum(testboost_workflow_total{status="completed"})': workload.sessions,
        "sum(testboost_workflow_total)": workload.sessions,
        "sum(testboost_workflow_duration_seconds_count)": workload.sessions,
        "sum(testboost_active_sessions)": 0,
    }
    for status, count in workload.rejected.items():
        expected[f'sum(testboost_http_requests_total{{status="{status}"}})'] = count
    shown = {expr: prometheus.value(expr) for expr in expected}
    assert shown == expected, {e: (shown[e], v) for e, v in expected.items() if shown[e] != v}
    # The API's database is PostgreSQL in its container: the pool gauges read its pool.
    assert (prometheus.value("sum(testboost_db_connection_pool_max)") or 0) > 0
