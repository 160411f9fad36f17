"""A client that asks for a large answer and does not read it cannot pin the server's memory:
after TESTBOOST_SEND_TIMEOUT with the server's buffer full, the connection is dropped (six
such readers of an 18 MB list held 290 MB for 45 s and more); a reader that does read gets
the whole answer, however long it takes."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.api_process import ApiProcess
from tests.support.fake_llm import FakeLLM, Reply, completion
from tests.support.waiting import until

SEND_TIMEOUT = 1.0
ANSWER = 1_900_000  # characters per step's answer, under the 2 MiB cap: a /steps of ~7.6 MB


@pytest.fixture(scope="module")
def steps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiProcess, str, int]]:
    """A served API, a session whose /steps answer is several MB, and that answer's size."""
    database = tmp_path_factory.mktemp("slow") / "t.db"
    with FakeLLM(default=Reply(body=completion("x" * ANSWER))) as fake:
        env = {
            "TESTBOOST_DATABASE_URL": f"sqlite:///{database}",
            "TESTBOOST_LLM_BASE_URL": fake.base_url,
            "TESTBOOST_SEND_TIMEOUT": str(SEND_TIMEOUT),
        }
        with ApiProcess(env) as api, httpx.Client(base_url=api.url, timeout=30) as client:
            body = {"session_type": "test_generation", "project_path": "/p"}
            session = client.post("/api/v2/sessions", json=body).json()["id"]
            until(
                lambda: client.get(f"/api/v2/sessions/{session}").json()["status"] == "completed",
                timeout=60,
                message="the session's steps",
            )
            size = len(client.get(f"/api/v2/sessions/{session}/steps").content)
            assert size > 3 * ANSWER
            yield api, session, size


def ask(api: ApiProcess, session: str, receive_buffer: int | None = 4096) -> socket.socket:
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", api.port))
    sock.sendall(f"GET /api/v2/sessions/{session}/steps HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock


def read_all(sock: socket.socket) -> int:
    sock.settimeout(10)
    received = 0
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def test_a_reader_that_does_not_read_is_dropped(steps: tuple[ApiProcess, str, int]) -> None:
    api, session, size = steps
    readers = [ask(api, session) for _ in range(3)]
    dropped = "the answer not read (under 16384 bytes/s for 1 s)"
    # None of them reads; each is dropped once its answer has filled the buffers.
    until(lambda: api.output.count(dropped) >= 3, timeout=30, message="three readers dropped")
    for sock in readers:
        # What the kernel's buffers held is still delivered; the rest was dropped with the
        # connection instead of waiting in the server's memory.
        assert read_all(sock) < size
        sock.close()


def test_a_reader_that_reads_slowly_gets_everything(steps: tuple[ApiProcess, str, int]) -> None:
    api, session, size = steps
    sock = ask(api, session, receive_buffer=None)
    sock.settimeout(10)
    received = 0
    while received < size:  # 256 kB every 50 ms, with pauses: a reader, never dropped
        chunk = sock.recv(256 * 1024)
        assert chunk, f"closed after {received} of {size} bytes"
        received += len(chunk)
        time.sleep(0.05)
    sock.close()
