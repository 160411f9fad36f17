"""Request limits of a real `testboost serve`, over raw sockets: a huge header is refused
before it is read, slow headers and bodies are cut off, idle keep-alive connections closed."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api_process import ApiProcess

TIMEOUT = 1.0  # each of the three timeouts, in seconds, for this test's server
SLACK = 2.0  # what the server may take beyond a timeout before we call it a failure
MIB = 1 << 20


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    path: Path = tmp_path_factory.mktemp("limits") / "tb.db"
    env = {
        "TESTBOOST_DATABASE_URL": f"sqlite:///{path}",
        "TESTBOOST_HEADER_TIMEOUT": str(TIMEOUT),
        "TESTBOOST_BODY_TIMEOUT": str(TIMEOUT),
        "TESTBOOST_KEEP_ALIVE_TIMEOUT": str(int(TIMEOUT)),
    }
    with ApiProcess(env) as server:
        yield server
    # Cut-off requests are not application errors.
    assert "Traceback" not in server.output and "ERROR" not in server.output, server.output


def connect(api: ApiProcess, send_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.connect(("127.0.0.1", api.port))
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection, which must happen within
    `seconds`."""
    deadline = time.monotonic() + seconds
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"connection still open after {seconds}s; received {received[:200]!r}")


def refused_or_closed(answer: bytes, status: int) -> bool:
    return answer == b"" or answer.startswith(f"HTTP/1.1 {status} ".encode())


def test_a_huge_header_is_refused_without_being_read(api: ApiProcess) -> None:
    # A small send buffer: what the server does not read cannot hide in ours.
    sock = connect(api, send_buffer=16384)
    sock.settimeout(5)
    started = time.monotonic()
    sent = 0
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: testboost\r\nX-Big: ")
        while sent < MIB:
            sock.sendall(b"a" * 16384)
            sent += 16384
    except OSError:
        pass  # reset or broken pipe: the server closed the connection
    answer = closed_within(sock, 5)
    assert sent < MIB, "the server read the whole megabyte"
    assert refused_or_closed(answer, 431), answer[:200]
    assert time.monotonic() - started < SLACK


def test_half_a_header_then_silence_is_closed(api: ApiProcess) -> None:
    sock = connect(api)
    started = time.monotonic()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: testboost\r\n")
    answer = closed_within(sock, TIMEOUT + SLACK)
    assert refused_or_closed(answer, 408), answer
    assert time.monotonic() - started >= TIMEOUT * 0.9


def test_a_connection_that_sends_nothing_is_closed(api: ApiProcess) -> None:
    assert closed_within(connect(api), TIMEOUT + SLACK) == b""


def test_a_header_sent_byte_by_byte_is_cut_at_the_timeout(api: ApiProcess) -> None:
    """The header timeout bounds the whole header, not the pause between two bytes."""
    sock = connect(api)
    started = time.monotonic()
    request = b"GET /health HTTP/1.1\r\nHost: testboost\r\nX-Slow: " + b"a" * 1000
    with pytest.raises(OSError):
        for byte in request:
            sock.sendall(bytes([byte]))
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:  # a 408 or the end of the connection
                raise ConnectionAbortedError("cut off by the server")
            assert time.monotonic() - started < TIMEOUT + SLACK, "still reading the header"


def post_head(length: int) -> bytes:
    return (
        b"POST /api/v1/alerts/webhook HTTP/1.1\r\nHost: testboost\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(length).encode() + b"\r\n\r\n"
    )


def test_a_stalled_body_is_408_or_closed(api: ApiProcess) -> None:
    sock = connect(api)
    started = time.monotonic()
    sock.sendall(post_head(1000) + b'{"version": "4", ')
    answer = closed_within(sock, TIMEOUT + SLACK)
    assert refused_or_closed(answer, 408), answer
    assert time.monotonic() - started >= TIMEOUT * 0.9


def test_a_body_sent_byte_by_byte_is_cut_at_the_timeout(api: ApiProcess) -> None:
    sock = connect(api)
    started = time.monotonic()
    sock.sendall(post_head(1000))
    with pytest.raises(OSError):
        for _ in range(1000):
            sock.sendall(b" ")
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:  # a 408 or the end of the connection
                raise ConnectionAbortedError("cut off by the server")
            assert time.monotonic() - started < TIMEOUT + SLACK, "still reading the body"


def test_an_idle_kept_alive_connection_is_closed(api: ApiProcess) -> None:
    sock = connect(api)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: testboost\r\n\r\n")
    readable, _, _ = select.select([sock], [], [], 5)
    assert readable and sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    closed_within(sock, TIMEOUT + SLACK)


def test_ordinary_requests_are_untouched(api: ApiProcess) -> None:
    # Headers well within the limit, and a body that pauses shorter than the timeout.
    headers = {f"X-Filler-{i}": "f" * 200 for i in range(50)}
    assert httpx.get(f"{api.url}/health", headers=headers).status_code == 200
    body = b'{"version": "4", "status": "firing", "alerts": []}'
    sock = connect(api)
    sock.sendall(post_head(len(body)) + body[:10])
    time.sleep(TIMEOUT / 2)
    sock.sendall(body[10:])
    readable, _, _ = select.select([sock], [], [], 5)
    assert readable and sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_body_over_the_limit_is_refused_and_not_read(api: ApiProcess) -> None:
    sock = connect(api)
    started = time.monotonic()
    sock.sendall(post_head(50 * MIB))
    answer = closed_within(sock, TIMEOUT / 2)  # closed at once, not at the body timeout
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert time.monotonic() - started < TIMEOUT / 2


def test_a_chunked_body_over_the_limit_is_refused_and_the_rest_not_read(api: ApiProcess) -> None:
    """Without a Content-Length the limit is found while reading: 413, and the connection is
    closed then (it went on reading 2.1 GB in 4 s, until the body timeout)."""
    sock = connect(api, send_buffer=16384)
    sock.settimeout(5)
    head = (
        b"POST /api/v1/alerts/webhook HTTP/1.1\r\nHost: testboost\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
    started, sent, closed = time.monotonic(), 0, False
    sock.sendall(head)
    try:
        while sent < 256 * MIB and time.monotonic() - started < TIMEOUT + SLACK:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        closed = True  # reset or broken pipe: the server stopped reading
    assert closed, f"still accepting after {sent / MIB:.0f} MiB"
    assert sent < 8 * MIB, f"{sent / MIB:.1f} MiB sent before the connection closed"
    assert time.monotonic() - started < TIMEOUT  # at once, not at the body timeout


@pytest.mark.parametrize("size", [100_000, 32 * 1024 + 1])
def test_a_header_block_over_the_limit_in_one_write_is_refused(api: ApiProcess, size: int) -> None:
    """The whole block in one write (it was parsed whole and answered 200: the limit was
    counted after parsing), one byte over the limit included."""
    head = b"GET /health HTTP/1.1\r\nHost: testboost\r\n"
    filler = b"X-Big: " + b"a" * (size - len(head) - len(b"X-Big: \r\n\r\n")) + b"\r\n\r\n"
    assert len(head + filler) == size
    sock = connect(api)
    sock.sendall(head + filler)
    assert closed_within(sock, TIMEOUT).startswith(b"HTTP/1.1 431 ")


def test_a_header_block_at_the_limit_is_served(api: ApiProcess) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: testboost\r\nConnection: close\r\n"
    size = 32 * 1024
    filler = b"X-Big: " + b"a" * (size - len(head) - len(b"X-Big: \r\n\r\n")) + b"\r\n\r\n"
    sock = connect(api)
    for part in (head, filler[:100], filler[100:]):  # in three writes
        sock.sendall(part)
        time.sleep(0.05)
    assert closed_within(sock, TIMEOUT).startswith(b"HTTP/1.1 200 ")


def test_blank_lines_before_a_request_do_not_hide_its_headers(api: ApiProcess) -> None:
    """A chunk starting with an empty line looked like a header block's end to the count."""
    head = b"\r\n\r\nGET /health HTTP/1.1\r\nHost: testboost\r\nX-Big: " + b"a" * 100_000
    sock = connect(api)
    sock.sendall(head + b"\r\n\r\n")
    assert closed_within(sock, TIMEOUT).startswith(b"HTTP/1.1 431 ")
