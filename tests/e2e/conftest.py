"""Stacks for the end-to-end tests: the real API, Prometheus, Alertmanager (and the
OpenTelemetry Collector and Jaeger) as local processes (devstack), with 1 s intervals; each
test module gets its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack import Stack, StackConfig
from tests.e2e.helpers import Jaeger, Prometheus, fake_llm
from tests.support.fake_llm import FakeLLM

StackFactory = Callable[..., Stack]


@pytest.fixture(scope="module")
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackFactory]:
    """Start stacks (fast mode) in temp dirs; every one is stopped at the end of the module."""
    stacks: list[Stack] = []

    def build(**options: object) -> Stack:
        workdir: Path = tmp_path_factory.mktemp("stack")
        stack = Stack(StackConfig(workdir=workdir, fast=True, **options))  # type: ignore[arg-type]
        stacks.append(stack)
        stack.up(timeout=60)
        return stack

    yield build
    for stack in reversed(stacks):
        stack.down()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    """A local OpenAI-compatible server for the module's stacks (tests.e2e.helpers.llm_env)."""
    with fake_llm() as server:
        yield server


@pytest.fixture(scope="module")
def prometheus_of() -> Iterator[Callable[[Stack], Prometheus]]:
    clients: list[Prometheus] = []

    def client(stack: Stack) -> Prometheus:
        clients.append(Prometheus(stack.urls["prometheus"]))
        return clients[-1]

    yield client
    for prometheus in clients:
        prometheus.close()


@pytest.fixture(scope="module")
def jaeger(stack: Stack) -> Iterator[Jaeger]:
    """The Jaeger of the module's `stack` (a fixture each module that uses this one defines)."""
    client = Jaeger(stack.urls["jaeger"])
    yield client
    client.close()
