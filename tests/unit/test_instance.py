"""telemetry/instance.py: a pushed series' `instance` is stable across restarts, one per worker,
and the operator's service.instance.id is its base."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from telemetry import instance

# A process that prints its instance id, then waits for a line on stdin (holding its slot).
WORKER = """
import sys
from pathlib import Path
from telemetry.instance import instance_id
print(instance_id("testboost-api", Path(sys.argv[1])), flush=True)
sys.stdin.readline()
"""


def start(slots: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(slots)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def stop(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=10)


def test_workers_take_the_lowest_free_slot_and_a_replacement_takes_the_freed_one(
    tmp_path: Path,
) -> None:
    host = socket.gethostname()
    first, first_id = start(tmp_path)
    second, second_id = start(tmp_path)
    assert (first_id, second_id) == (f"{host}/0", f"{host}/1")
    stop(first)  # a worker dies: its replacement continues its series
    third, third_id = start(tmp_path)
    assert third_id == f"{host}/0"
    stop(second)
    stop(third)
    restarted, restarted_id = start(tmp_path)  # the whole server restarts
    assert restarted_id == f"{host}/0"
    stop(restarted)


def test_the_operators_instance_id_is_the_base(tmp_path: Path) -> None:
    attributes = "service.instance.id=testboost-api-7d9f-x2k4,deployment.environment=prod"
    process, ident = start(tmp_path, OTEL_RESOURCE_ATTRIBUTES=attributes)
    assert ident == "testboost-api-7d9f-x2k4/0"
    stop(process)


def test_one_slot_per_process_whatever_the_number_of_calls(tmp_path: Path) -> None:
    assert instance.instance_id("svc", tmp_path) == instance.instance_id("svc", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0"]


def test_an_unusable_directory_falls_back_to_the_pid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert instance.instance_id("svc", blocked / "slots") == (
        f"{socket.gethostname()}/pid{os.getpid()}"
    )
    assert "worker slots unavailable" in caplog.text


def test_a_directory_someone_else_can_write_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The slots live in the shared temp dir: a directory others can write (or a symlink)
    could let a neighbour hold or redirect them."""
    shared = tmp_path / "slots"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert instance.instance_id("svc", shared) == f"{socket.gethostname()}/pid{os.getpid()}"
    assert "others can write to it" in caplog.text
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    caplog.clear()
    instance._claimed.clear()
    assert instance.instance_id("svc", link).endswith(f"/pid{os.getpid()}")
    assert "not a directory" in caplog.text


def test_serve_gives_its_workers_host_and_port_as_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two servers of one host (two ports) never share worker slots; an operator's
    service.instance.id is kept."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    instance.serve_base(8000)
    assert os.environ["OTEL_RESOURCE_ATTRIBUTES"] == (
        f"deployment.environment=prod,service.instance.id={socket.gethostname()}:8000"
    )
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7")
    instance.serve_base(8000)
    assert os.environ["OTEL_RESOURCE_ATTRIBUTES"] == "service.instance.id=pod-7"
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES")
    instance.serve_base(8001)
    assert os.environ["OTEL_RESOURCE_ATTRIBUTES"] == (
        f"service.instance.id={socket.gethostname()}:8001"
    )
