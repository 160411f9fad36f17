"""Two `testboost serve` processes on one database, as with `--workers N`, a rolling restart or
two replicas: each session's workflow runs in one process at a time, and a dead process's
sessions are taken over once its leases expire, each from its last finished step.

The LLM is a fake OpenAI-compatible server answering after 0.5 s; the tests hold its answers
to keep calls in flight across B's start and the kill, whatever the machine's speed.
Each process calls it with its own API key, and each prompt names its project and step: every
request is attributed to a process, a session and a step.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.workflows.definitions import WORKFLOWS, SessionType
from tests.support.api_process import ApiProcess
from tests.support.exposition import Exposition
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.waiting import until

TTL = 3.0  # seconds of TESTBOOST_WORKFLOW_LEASE_TTL
LATENCY = 0.5  # seconds per LLM answer
TYPES = list(SessionType)
# The first line of a step's prompt is its instruction: (session type, position) by instruction.
STEP_OF = {
    definition.instruction: position
    for steps in WORKFLOWS.values()
    for position, definition in enumerate(steps)
}
StepKey = tuple[str, int]  # (project path, step position)


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM(Reply(delay=LATENCY)) as server:
        yield server


def api(database_url: str, fake: FakeLLM, key: str, concurrent: int) -> ApiProcess:
    return ApiProcess(
        {
            "TESTBOOST_DATABASE_URL": database_url,
            "TESTBOOST_LLM_BASE_URL": fake.base_url,
            "TESTBOOST_LLM_API_KEY": key,
            "TESTBOOST_WORKFLOW_LEASE_TTL": str(TTL),
            "TESTBOOST_MAX_CONCURRENT_WORKFLOWS": str(concurrent),
            # New series show 0 for two intervals; keep that short for the counts below.
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        }
    )


def create_sessions(process: ApiProcess, count: int) -> dict[str, str]:
    """`count` sessions of every type in turn; project path → session id."""
    ids = {}
    for index in range(count):
        project = f"/repo/{index}"
        response = httpx.post(
            f"{process.url}/api/v2/sessions",
            json={"session_type": TYPES[index % len(TYPES)].value, "project_path": project},
        )
        assert response.status_code == 201, response.text
        ids[project] = response.json()["id"]
    return ids


def calls(fake: FakeLLM) -> list[tuple[str, StepKey]]:
    """Every request the fake received: (API key, (project, step position))."""
    with fake.lock:
        requests = list(fake.requests)
    out = []
    for request in requests:
        lines = request["body"]["messages"][-1]["content"].splitlines()
        project = lines[1].removeprefix("Project: ")
        out.append((request["authorization"].removeprefix("Bearer "), (project, STEP_OF[lines[0]])))
    return out


def steps_of(process: ApiProcess, session_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{process.url}/api/v2/sessions/{session_id}/steps")
    assert response.status_code == 200
    steps: list[dict[str, Any]] = response.json()
    return steps


def completed(steps: list[dict[str, Any]]) -> int:
    return sum(step["status"] == "completed" for step in steps)


def all_completed(process: ApiProcess, ids: dict[str, str]) -> bool:
    return all(
        httpx.get(f"{process.url}/api/v2/sessions/{sid}").json()["status"] == "completed"
        for sid in ids.values()
    )


def workflows_finished(process: ApiProcess) -> float:
    return Exposition(httpx.get(f"{process.url}/metrics").text).value("testboost_workflow_total")


def test_a_second_process_takes_none_of_a_live_ones_sessions(
    database_url: str, fake: FakeLLM
) -> None:
    count = 8  # on four slots: four running, four queued (held by A all the same)
    with api(database_url, fake, "key-a", concurrent=4) as a:
        ids = create_sessions(a, count)
        until(lambda: fake.count > 4, message="A's first steps done")
        fake.answering.clear()  # A's calls now stay in flight, longer than a lease
        with api(database_url, fake, "key-b", concurrent=8) as b:
            # B's start-up sweep found only live leases; for two lease periods (two periodic
            # sweeps) A renews them while its calls hang, and B still takes nothing.
            calm_until = time.monotonic() + 2 * TTL
            while time.monotonic() < calm_until:
                assert "key-b" not in {who for who, _ in calls(fake)}
                time.sleep(0.1)
            fake.answering.set()
            until(lambda: all_completed(a, ids), timeout=30, message="every session completed")
            assert b.process is not None and b.process.poll() is None
            made = calls(fake)
            per_step = Counter(key for _, key in made)
            keys = Counter(who for who, _ in made)
            assert keys == {"key-a": count * 4}, keys  # B made no call at all
            assert sorted(per_step.values()) == [1] * (count * 4)  # each step's call once
            assert "Resumed" not in b.output and "Took over" not in b.output, b.output
            # Each workflow recorded once, by the process that ran it.
            until(
                lambda: workflows_finished(a) == count,
                timeout=10,
                message=f"A's testboost_workflow_total reaching {count}",
            )
            assert workflows_finished(b) == 0
            print(f"both alive: {len(made)} LLM calls for {count * 4} steps, all from A")


def test_a_killed_process_sessions_resume_elsewhere_from_their_last_finished_step(
    database_url: str, fake: FakeLLM
) -> None:
    count = 6
    with api(database_url, fake, "key-a", concurrent=count) as a:
        ids = create_sessions(a, count)

        def done_per_session() -> dict[str, int]:
            return {project: completed(steps_of(a, sid)) for project, sid in ids.items()}

        def each_with_its_next_call_in_flight() -> bool:
            asked = Counter(project for _, (project, _) in calls(fake))
            return all(done >= 1 and asked[p] == done + 1 for p, done in done_per_session().items())

        until(lambda: min(done_per_session().values()) >= 1, message="every session one step in")
        fake.answering.clear()  # the calls now made stay in flight until after the kill
        until(each_with_its_next_call_in_flight, message="a call in flight for each session")
        with api(database_url, fake, "key-b", concurrent=count) as b:
            assert "Took over" not in b.output  # A is alive: its sessions are not B's
            killed_at = time.monotonic()
            assert a.process is not None
            a.process.send_signal(signal.SIGKILL)
            a.process.wait(timeout=10)
            at_kill = {sid: steps_of(b, sid) for sid in ids.values()}
            fake.answering.set()  # A's calls are answered to nobody

            # B's periodic sweep takes the sessions over once A's leases have run out.
            until(
                lambda: any(who == "key-b" for who, _ in calls(fake)),
                timeout=3 * TTL + 5,
                message="B taking over",
            )
            took = time.monotonic() - killed_at
            assert TTL / 2 < took < 2 * TTL + 2, f"takeover {took:.1f} s after the kill"
            until(lambda: all_completed(b, ids), timeout=30, message="every session completed")

            made = calls(fake)
            by_step = {key: Counter(who for who, k in made if k == key) for _, key in made}
            for project, sid in ids.items():
                final = steps_of(b, sid)
                assert [s["status"] for s in final] == ["completed"] * 4
                flying = 0
                for before, after in zip(at_kill[sid], final, strict=True):
                    who = by_step[(project, before["position"])]
                    if before["status"] == "completed":
                        # Finished before the kill: kept as it was, never called again.
                        assert who == {"key-a": 1}, (project, before["position"], who)
                        assert (after["output"], after["finished_at"]) == (
                            before["output"],
                            before["finished_at"],
                        )
                    elif who["key-a"]:
                        # In flight at the kill: its answer was lost, B called it once more.
                        assert who == {"key-a": 1, "key-b": 1}, (project, before["position"], who)
                        flying += 1
                    else:
                        assert who == {"key-b": 1}, (project, before["position"], who)
                assert flying == 1  # the one step each session had in flight
            assert b.output.count("Took over session") == count, b.output
            # Every session finished once: none before the kill, all of them in B.
            until(
                lambda: workflows_finished(b) == count,
                timeout=10,
                message=f"B's testboost_workflow_total reaching {count}",
            )
            steps = count * 4
            assert len(made) == steps + count
            print(
                f"kill -9: {len(made)} LLM calls for {steps} steps ({count} in flight at the "
                f"kill, called again once); takeover {took:.1f} s after the kill (TTL {TTL:.0f} s)"
            )
