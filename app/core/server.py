"""How `testboost serve` runs uvicorn, with the connection limits a production server has.

uvicorn 0.54 has `timeout_keep_alive`, and a header size limit only for its h11 parser
(`h11_max_incomplete_event_size`). With httptools, the faster parser `uvicorn[standard]`
installs and picks, a header of any size is read in full (50 MB: RSS +48 MB before the 401),
and there is no read timeout at all: a connection that sends half a header or half a body
stays open for ever. `LimitedHttpToolsProtocol` adds the three (TESTBOOST_MAX_HEADER_BYTES,
TESTBOOST_HEADER_TIMEOUT, TESTBOOST_BODY_TIMEOUT) to the httptools protocol, through the
parser callbacks it already has: on_message_begin, on_headers_complete, on_message_complete;
and a send timeout (TESTBOOST_SEND_TIMEOUT), through asyncio's pause_writing/resume_writing.

Private internals, fenced here as telemetry/_compat.py fences the others (telemetry has no
business knowing the app's HTTP server): uvicorn 0.54's `HttpToolsProtocol`
(uvicorn.protocols.http.httptools_impl, not a documented API), its constructor, its `loop`,
`transport` and `client`, `flow.read_paused` (uvicorn paused reading for the app),
`cycle.response_started` and `cycle.response_complete`, and the parser callbacks
`on_message_begin`, `on_headers_complete` and `on_message_complete`. pyproject.toml pins
uvicorn to the 0.54 series; tests/unit/test_compat.py fails, naming the internal, the moment
one moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import struct
import termios
from enum import Enum
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.config import Settings, get_settings

log = logging.getLogger(__name__)
# Bytes per second a client must read an answer at, measured over TESTBOOST_SEND_TIMEOUT, while
# the server's buffer for it is full (a 128 kbit/s link reads 16 kB/s).
MIN_SEND_RATE = 16 * 1024


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "http": LimitedHttpToolsProtocol,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "timeout_worker_healthcheck": settings.worker_healthcheck_timeout,
    }


class _Reading(Enum):
    HEADERS = "headers"  # from the connection's (or a new request's) first byte
    BODY = "body"  # from the end of the headers to the end of the body
    NOTHING = "nothing"  # the app answers, or uvicorn's keep-alive timeout runs


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Headers larger than the limit: 431, connection closed, the rest never read. Headers
    not complete within header_timeout of their first byte (of the connection, for the first
    request), or a body not complete within body_timeout of the headers' end: 408 (or a plain
    close once an answer has started). Deadlines, not idle timers, so trickling one byte at a
    time does not keep a connection open; a body the application is slow to read (uvicorn
    paused reading) is not the client's fault and waits for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()  # the settings the app was built from, cached per process
        self._max_header_bytes = settings.max_header_bytes
        self._timeouts = {
            _Reading.HEADERS: settings.header_timeout,
            _Reading.BODY: settings.body_timeout,
        }
        self._reading = _Reading.HEADERS
        self._header_bytes = 0  # of the header block being received
        self._tail = b""  # its last 3 bytes: its end may straddle two reads
        self._deadline: asyncio.TimerHandle | None = None
        self._send_timeout = settings.send_timeout
        self._send_deadline: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect(_Reading.HEADERS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._cancel_send_deadline()
        super().connection_lost(exc)

    # An answer the client does not read waits in memory (asyncio's buffer) for as long as
    # the connection lives: six readers that never read an 18 MB list held 290 MB for 45 s and
    # more. While writing is paused, every `send_timeout` the buffer must have shrunk by
    # MIN_SEND_RATE for that long, or the connection is dropped, and the buffer with it.

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._watch_sending(self._unsent())

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_send_deadline()

    def _watch_sending(self, buffered: int) -> None:
        self._send_deadline = self.loop.call_later(self._send_timeout, self._check_sent, buffered)

    def _cancel_send_deadline(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _unsent(self) -> int:
        """Bytes not yet read by the client: asyncio's buffer, plus the kernel's send queue
        (Linux wakes a paused writer only once a third of a buffer of megabytes is free, so
        asyncio's buffer alone stands still for seconds while the client reads)."""
        queued = 0
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                answer = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)
                queued = struct.unpack("i", answer)[0]
        return self.transport.get_write_buffer_size() + queued

    def _check_sent(self, buffered_before: int) -> None:
        self._send_deadline = None
        buffered = self._unsent()
        if buffered_before - buffered >= MIN_SEND_RATE * self._send_timeout:
            self._watch_sending(buffered)  # a slow reader, but a reader
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        log.info(
            "Dropping the connection of %s: the answer not read (under %d bytes/s for %g s)",
            client,
            MIN_SEND_RATE,
            self._send_timeout,
        )
        self.transport.abort()  # close() would wait to send what the client does not read

    def data_received(self, data: bytes) -> None:
        before = self._header_bytes
        in_headers = self._reading is not _Reading.BODY and not self.transport.is_closing()
        if in_headers and not self._header_block_fits(data):
            self._refuse(431, f"request headers larger than {self._max_header_bytes} bytes")
            return
        super().data_received(data)  # the parser callbacks below move `_reading`
        if (
            self._reading is _Reading.HEADERS
            and self._header_bytes == before
            and not self.transport.is_closing()
        ):
            # Still in a header block this chunk was not counted for: a request pipelined
            # behind another, or one after blank lines. Counted after parsing: at most the
            # limit plus one read is kept.
            self._header_bytes += len(data)
            if self._header_bytes > self._max_header_bytes:
                self._refuse(431, f"request headers larger than {self._max_header_bytes} bytes")

    def _header_block_fits(self, data: bytes) -> bool:
        """Before parsing: does the header block, this chunk's part included, stay within the
        limit? Exact however the block is split (one write of 100 kB included)."""
        if self._header_bytes == 0 and not self._tail:
            # The parser skips empty lines before a request line: they end no header block.
            data = data.lstrip(b"\r\n")
            if not data:
                return True
        window = self._tail + data
        end = window.find(b"\r\n\r\n")
        if end < 0:
            self._header_bytes += len(data)
            self._tail = window[-3:]
            return self._header_bytes <= self._max_header_bytes
        return self._header_bytes + end + 4 - len(self._tail) <= self._max_header_bytes

    # --- httptools parser callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._reading is not _Reading.HEADERS:  # a new request on a kept-alive connection
            self._expect(_Reading.HEADERS)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._expect(_Reading.BODY)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading = _Reading.NOTHING
        self._header_bytes, self._tail = 0, b""  # the next request's header block starts
        self._cancel_deadline()

    # --- deadlines ----------------------------------------------------------------------------

    def _expect(self, reading: _Reading) -> None:
        self._cancel_deadline()
        self._reading = reading
        self._deadline = self.loop.call_later(self._timeouts[reading], self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._reading is _Reading.NOTHING:
            return
        if self._reading is _Reading.BODY and self.flow.read_paused:
            self._deadline = self.loop.call_later(1.0, self._deadline_passed)
            return
        if self._reading is _Reading.HEADERS and self._header_bytes == 0:
            self.transport.close()  # connected and sent nothing: nothing to answer
            return
        seconds = self._timeouts[self._reading]
        self._refuse(408, f"request {self._reading.value} not received within {seconds:g} s")

    def _refuse(self, status: int, detail: str) -> None:
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        log.info("Closing the connection of %s: %s (%d)", client, detail, status)
        if self._can_answer():
            body = json.dumps({"detail": detail}).encode()
            head = (
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                "content-type: application/json\r\n"
                f"content-length: {len(body)}\r\n"
                "connection: close\r\n\r\n"
            )
            self.transport.write(head.encode() + body)
        self.transport.close()

    def _can_answer(self) -> bool:
        """Not in the middle of another answer: this request's, or a previous one's."""
        cycle = self.cycle
        if cycle is None:
            return True
        if self._reading is _Reading.HEADERS:  # `cycle` is the previous request's
            return cycle.response_complete
        return not cycle.response_started
