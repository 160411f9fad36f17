"""The fenced places that reach into dependencies' internals (telemetry/_compat.py, and
app/core/server.py for uvicorn): each internal we rely on is still where, and what, it was when
we read it. A failure names the internal: re-read it in the new version, then move the pin in
pyproject.toml."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from telemetry import _compat

# The versions _compat.py was read against; pyproject.toml pins each to a compatible range.
READ_AGAINST = {
    "opentelemetry-exporter-prometheus": "0.66b2",
    "prometheus-client": "0.26",
    "sqlalchemy": "2.0",
    "uvicorn": "0.54",
}


@pytest.mark.parametrize("package,version", READ_AGAINST.items())
def test_installed_versions_are_the_ones_read(package: str, version: str) -> None:
    installed = metadata.version(package)
    assert installed.startswith(version), f"{package} {installed}: re-read _compat.py's use"


@pytest.mark.parametrize(
    "name,exposed",
    # Invalid characters become "_", runs of "_" collapse, a leading digit is replaced.
    [("testboost.llm-calls", "testboost_llm_calls"), ("9lives", "_lives"), ("a__b", "a_b")],
)
def test_exporter_name_rules(name: str, exposed: str) -> None:
    assert _compat.sanitize_full_name(name) == exposed


@pytest.mark.parametrize(
    "unit,suffix", [("s", "seconds"), ("By", "bytes"), ("ms", "milliseconds"), ("", "")]
)
def test_exporter_unit_rules(unit: str, suffix: str) -> None:
    assert _compat.map_unit(unit) == suffix


def test_attribute_names_are_sanitised() -> None:
    assert _compat.sanitize_attribute("http.route") == "http_route"


@pytest.mark.parametrize(
    "value,text", [(1.0, "1.0"), (1_500_000, "1.5e+06"), (float("inf"), "+Inf"), (0.25, "0.25")]
)
def test_go_float_formatting(value: float, text: str) -> None:
    assert _compat.floatToGoString(value) == text


def test_queue_pool_overflow_cap() -> None:
    engine = create_engine("sqlite://", poolclass=QueuePool, pool_size=3, max_overflow=7)
    assert isinstance(engine.pool, QueuePool)
    assert _compat.pool_max_overflow(engine.pool) == 7
    engine.dispose()


# --- uvicorn: app/core/server.py's LimitedHttpToolsProtocol ------------------------------------

PARSER_CALLBACKS = ("on_message_begin", "on_headers_complete", "on_message_complete")


class _Transport(asyncio.Transport):
    """Just enough of a socket transport for the protocol to read a request and answer it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Recording(HttpToolsProtocol):
    """The parser callbacks the subclass overrides, recorded in the order uvicorn calls them."""

    calls: list[str]

    def on_message_begin(self) -> None:
        self.calls.append("on_message_begin")
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.calls.append("on_headers_complete")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.calls.append("on_message_complete")
        super().on_message_complete()


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    _answer(loop)
    loop.close()


def _answer(loop: asyncio.AbstractEventLoop) -> None:
    """Run the app's tasks (one per request read) to their end."""
    pending = asyncio.all_tasks(loop)
    if pending:
        loop.run_until_complete(asyncio.gather(*pending))


def _connected(loop: asyncio.AbstractEventLoop) -> tuple[_Recording, _Transport]:
    config = Config(app=_hello, http="httptools", lifespan="off", log_config=None)
    config.load()
    protocol = _Recording(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    protocol.calls = []
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport


def test_httptools_protocol_constructor() -> None:
    params = list(inspect.signature(HttpToolsProtocol.__init__).parameters)
    assert params[:5] == ["self", "config", "server_state", "app_state", "_loop"], (
        f"HttpToolsProtocol.__init__ is now {params}"
    )


@pytest.mark.parametrize("name", PARSER_CALLBACKS)
def test_httptools_parser_callbacks_take_no_arguments(name: str) -> None:
    callback = getattr(HttpToolsProtocol, name, None)
    assert callback is not None, f"HttpToolsProtocol.{name} is gone"
    assert list(inspect.signature(callback).parameters) == ["self"], f"{name} takes arguments"


@pytest.mark.parametrize("name", ["pause_writing", "resume_writing", "data_received"])
def test_httptools_protocol_defines_the_overridden_methods(name: str) -> None:
    assert name in vars(HttpToolsProtocol), f"HttpToolsProtocol.{name} no longer defined there"


def test_httptools_callbacks_run_in_order_for_a_request(loop: asyncio.AbstractEventLoop) -> None:
    protocol, _ = _connected(loop)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert protocol.calls == list(PARSER_CALLBACKS)


def test_httptools_protocol_attributes(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport = _connected(loop)
    assert protocol.loop is loop, "HttpToolsProtocol.loop"
    assert protocol.transport is transport, "HttpToolsProtocol.transport"
    assert protocol.client == ("127.0.0.1", 50000), "HttpToolsProtocol.client"
    assert protocol.cycle is None, "HttpToolsProtocol.cycle (None before a request)"


def test_httptools_flow_read_paused(loop: asyncio.AbstractEventLoop) -> None:
    protocol, _ = _connected(loop)
    assert protocol.flow.read_paused is False, "HttpToolsProtocol.flow.read_paused"
    protocol.flow.pause_reading()
    assert protocol.flow.read_paused is True, "flow.pause_reading() no longer sets read_paused"


def test_httptools_cycle_response_flags(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport = _connected(loop)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    cycle = protocol.cycle
    assert cycle is not None, "HttpToolsProtocol.cycle (set by on_headers_complete)"
    assert (cycle.response_started, cycle.response_complete) == (False, False), (
        "cycle.response_started / cycle.response_complete before the app answers"
    )
    _answer(loop)
    assert (cycle.response_started, cycle.response_complete) == (True, True), (
        "cycle.response_started / cycle.response_complete once the app answered"
    )
    assert transport.written.startswith(b"HTTP/1.1 200")
